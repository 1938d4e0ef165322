#!/usr/bin/env bash
# run.sh: start a standalone gregor broker on 127.0.0.1:9092 with its data
# in ./gregor-data, create the topic `events` (4 partitions) once it is up,
# print how to produce and consume, and run in the foreground until Ctrl-C.
#
# Environment: LISTEN (127.0.0.1:9092), HTTP_ADDR (127.0.0.1:9644),
# DATA_DIR (./gregor-data), TOPIC (events), PARTITIONS (4).
set -euo pipefail
cd "$(dirname "$0")/.."

LISTEN="${LISTEN:-127.0.0.1:9092}"
HTTP_ADDR="${HTTP_ADDR:-127.0.0.1:9644}"
DATA_DIR="${DATA_DIR:-./gregor-data}"
TOPIC="${TOPIC:-events}"
PARTITIONS="${PARTITIONS:-4}"
BIN=bin/gregor

if [ ! -x "$BIN" ]; then
	echo "run: $BIN missing; run 'make build' (make run does it for you)" >&2
	exit 1
fi

if "$BIN" topic list -b "$LISTEN" --timeout 2s >/dev/null 2>&1; then
	echo "run: a Kafka broker is already answering on $LISTEN; stop it or set LISTEN=host:port" >&2
	exit 1
fi

# The broker runs in a session of its own, so that a Ctrl-C at the terminal
# reaches this script only: stop passes it on once and waits for the clean
# shutdown. In our process group the broker would get the terminal's SIGINT
# and then the SIGTERM of stop as well. Without setsid (not Linux), it does,
# and takes the second signal, so soon after the first, as the same stop.
if command -v setsid >/dev/null 2>&1; then
	setsid "$BIN" broker --listen "$LISTEN" --http-addr "$HTTP_ADDR" --data-dir "$DATA_DIR" &
else
	"$BIN" broker --listen "$LISTEN" --http-addr "$HTTP_ADDR" --data-dir "$DATA_DIR" &
fi
broker=$!

# wait_broker waits for the broker to exit and returns its exit status. A
# trapped signal interrupts wait (status > 128) while the broker still runs:
# wait again.
wait_broker() {
	local status
	while :; do
		status=0
		wait "$broker" || status=$?
		if [ "$status" -gt 128 ] && kill -0 "$broker" 2>/dev/null; then
			continue
		fi
		return "$status"
	done
}

# stop is the trap for INT, TERM and HUP: the first one asks the broker to
# shut down cleanly and waits for it; another one while it does is passed
# on, and the broker exits at once if that is more than 2 s after the first
# (a second Ctrl-C).
stopping=""
stop() {
	if [ -n "$stopping" ]; then
		kill -TERM "$broker" 2>/dev/null || true
		return
	fi
	stopping=1
	echo "run: stopping the broker..." >&2
	kill -TERM "$broker" 2>/dev/null || true
	local status=0
	wait_broker || status=$?
	exit "$status"
}
trap stop INT TERM HUP

# Wait (up to 30 s) until the broker answers; bail out if it died.
ready=""
for _ in $(seq 1 300); do
	if ! kill -0 "$broker" 2>/dev/null; then
		wait "$broker" || true
		echo "run: the broker exited during startup (see its log above)" >&2
		exit 1
	fi
	if "$BIN" topic list -b "$LISTEN" >/dev/null 2>&1; then
		ready=1
		break
	fi
	sleep 0.1
done
if [ -n "$ready" ] && ! kill -0 "$broker" 2>/dev/null; then
	ready="" # something else answered; ours died
fi
if [ -z "$ready" ]; then
	echo "run: the broker did not answer on $LISTEN within 30 s" >&2
	kill -TERM "$broker" 2>/dev/null || true
	wait_broker || true
	exit 1
fi

"$BIN" topic create "$TOPIC" -b "$LISTEN" --partitions "$PARTITIONS" --if-not-exists >/dev/null
# An existing topic keeps its count: say what it has, not what was asked.
have="$("$BIN" topic describe "$TOPIC" -b "$LISTEN" 2>/dev/null | sed -n 's/.*Partitions: \([0-9]*\).*/\1/p' | head -n 1)"
have="${have:-$PARTITIONS}"

cat <<MSG

gregor is running: Kafka on $LISTEN, metrics on http://$HTTP_ADDR/metrics, data in $DATA_DIR
Topic '$TOPIC' has $have partitions. In another terminal:

  produce lines:   printf 'hello\nworld\n' | bin/gregor produce -b $LISTEN -t $TOPIC
  consume:         bin/gregor consume -b $LISTEN -t $TOPIC --from beginning --follow
  with kcat:       echo hi | kcat -P -b $LISTEN -t $TOPIC
                   kcat -C -b $LISTEN -t $TOPIC -o beginning -e
                   kcat -L -b $LISTEN
  benchmark:       bin/gregor perf produce -b $LISTEN -t $TOPIC --records 1000000

Press Ctrl-C to stop.
MSG

wait_broker
