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

"$BIN" broker --listen "$LISTEN" --http-addr "$HTTP_ADDR" --data-dir "$DATA_DIR" &
broker=$!
stop() {
	kill -TERM "$broker" 2>/dev/null || true
	wait "$broker" 2>/dev/null || true
}
trap stop INT TERM

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
	stop
	exit 1
fi

"$BIN" topic create "$TOPIC" -b "$LISTEN" --partitions "$PARTITIONS" --if-not-exists >/dev/null

cat <<MSG

gregor is running: Kafka on $LISTEN, metrics on http://$HTTP_ADDR/metrics, data in $DATA_DIR
Topic '$TOPIC' has $PARTITIONS partitions. In another terminal:

  produce lines:   printf 'hello\nworld\n' | bin/gregor produce -b $LISTEN -t $TOPIC
  consume:         bin/gregor consume -b $LISTEN -t $TOPIC --from beginning --follow
  with kcat:       echo hi | kcat -P -b $LISTEN -t $TOPIC
                   kcat -C -b $LISTEN -t $TOPIC -o beginning -e
                   kcat -L -b $LISTEN
  benchmark:       bin/gregor perf produce -b $LISTEN -t $TOPIC --records 1000000

Press Ctrl-C to stop.
MSG

wait "$broker"
