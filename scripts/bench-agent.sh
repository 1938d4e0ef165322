#!/usr/bin/env bash
# bench-agent.sh: lines/s shipping one big file of 200-byte lines into a
# gregor broker, with the gregor agent and, in the same run and into the same
# broker, with rsyslog (imfile -> omkafka). Prints both rates, their ratio
# and the agent's peak resident memory (VmHWM).
#
#   scripts/bench-agent.sh                 # 2 GB file (the issue's figure)
#   BENCH_AGENT_BYTES=200000000 scripts/bench-agent.sh   # a quick run
#
# Environment:
#   BENCH_AGENT_BYTES   file size in bytes (default 2000000000)
#   BENCH_AGENT_DIR     work dir (default: a fresh temp dir, removed after)
#   BENCH_AGENT_COMPRESSION  producer compression for both (default none)
#   BENCH_AGENT_INFLIGHT     the agent's producer.max-in-flight-bytes (default: its default)
#   BENCH_SKIP_RSYSLOG=1     run the agent only
#
# rsyslog and its Kafka output are Debian packages (rsyslog, rsyslog-kafka),
# installed with apt-get if missing. rsyslogd runs in the foreground with a
# generated config (-n -f CONF -i PIDFILE), never as a system service.
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

BYTES=${BENCH_AGENT_BYTES:-2000000000}
LINE=200
LINES=$((BYTES / LINE))
COMPRESSION=${BENCH_AGENT_COMPRESSION:-none}

log() { echo "bench-agent: $*" >&2; }

# --- tools ---------------------------------------------------------------
if [ -z "${BENCH_SKIP_RSYSLOG:-}" ]; then
	if ! command -v rsyslogd >/dev/null 2>&1 || ! ls /usr/lib/*/rsyslog/omkafka.so >/dev/null 2>&1; then
		log "installing rsyslog and rsyslog-kafka"
		sudo=()
		[ "$(id -u)" -ne 0 ] && sudo=(sudo)
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rsyslog rsyslog-kafka >/dev/null
	fi
fi
go build -o bin/gregor ./cmd/gregor
GREGOR=$PWD/bin/gregor

# --- work dir and cleanup ------------------------------------------------
if [ -n "${BENCH_AGENT_DIR:-}" ]; then
	WORK=$BENCH_AGENT_DIR
	mkdir -p "$WORK"
	KEEP=1
else
	WORK=$(mktemp -d /tmp/bench-agent.XXXXXX)
	KEEP=
fi
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ -z "$KEEP" ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# --- the input file: LINES lines of exactly 200 bytes, all different -----
INPUT=$WORK/input.log
if [ ! -s "$INPUT" ] || [ "$(stat -c %s "$INPUT")" -ne $((LINES * LINE)) ]; then
	log "writing $LINES lines of $LINE bytes to $INPUT"
	mkdir -p "$WORK/gen"
	cat >"$WORK/gen/main.go" <<'EOF'
package main

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"strconv"
)

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer w.Flush()
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
	rng := rand.New(rand.NewSource(1))
	buf := make([]byte, 200)
	for i := 0; i < n; i++ {
		copy(buf, fmt.Sprintf("2026-01-01T00:00:00Z INFO line=%010d msg=", i))
		for j := 44; j < 199; j++ {
			buf[j] = alphabet[rng.Intn(len(alphabet))]
		}
		buf[199] = '\n'
		w.Write(buf)
	}
}
EOF
	(cd "$WORK/gen" && GO111MODULE=off go run main.go "$LINES") >"$INPUT"
fi
cat "$INPUT" >/dev/null # warm the page cache for both readers alike

# --- broker --------------------------------------------------------------
KPORT=$(free_port)
HPORT=$(free_port)
BROKER=127.0.0.1:$KPORT
rm -rf "$WORK/broker"
"$GREGOR" broker --listen "$BROKER" --http-addr "127.0.0.1:$HPORT" --data-dir "$WORK/broker" \
	--log-level warn >"$WORK/broker.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
	"$GREGOR" topic list -b "$BROKER" >/dev/null 2>&1 && break
	sleep 0.1
done
"$GREGOR" topic create bench-agent -b "$BROKER" --partitions 1 >/dev/null
"$GREGOR" topic create bench-rsyslog -b "$BROKER" --partitions 1 >/dev/null

latest_offset() { # topic -> end offset of partition 0
	"$GREGOR" topic describe "$1" -b "$BROKER" 2>/dev/null | awk '$1 == "0" { print $7; exit }'
}

now() { date +%s.%N; }

# wait_for TOPIC PID: polls the topic's end offset until it reaches LINES.
wait_for() {
	local topic=$1 pid=$2 off=0
	while :; do
		off=$(latest_offset "$topic")
		[ -n "$off" ] && [ "$off" -ge "$LINES" ] && break
		if ! kill -0 "$pid" 2>/dev/null; then
			log "process $pid for $topic died at offset $off"
			return 1
		fi
		sleep 0.2
	done
}

# --- the agent -----------------------------------------------------------
APORT=$(free_port)
cat >"$WORK/pipeline.yaml" <<EOF
brokers: [$BROKER]
agents:
  - name: bench
    data-dir: $WORK/agent-data
    http-addr: 127.0.0.1:$APORT
    producer:
      compression: $COMPRESSION
${BENCH_AGENT_INFLIGHT:+      max-in-flight-bytes: $BENCH_AGENT_INFLIGHT}
    inputs:
      - paths: ["$INPUT"]
        topic: bench-agent
EOF
rm -rf "$WORK/agent-data"
log "agent: shipping $LINES lines"
start=$(now)
"$GREGOR" agent --config "$WORK/pipeline.yaml" --log-level warn >"$WORK/agent.log" 2>&1 &
APID=$!
PIDS+=($APID)
wait_for bench-agent $APID
end=$(now)
AGENT_HWM=$(awk '/VmHWM/ { print $2 }' /proc/$APID/status)
AGENT_CPU=$(awk '{ printf "%.1f", ($14 + $15) / 100 }' /proc/$APID/stat)
kill $APID
wait $APID || true
AGENT_SECS=$(echo "$end - $start" | bc -l)
AGENT_RATE=$(echo "$LINES / $AGENT_SECS" | bc -l)
printf 'agent:   %d lines in %.2fs = %.0f lines/s, peak RSS %.1f MiB, %.1f CPU s\n' \
	"$LINES" "$AGENT_SECS" "$AGENT_RATE" "$(echo "$AGENT_HWM / 1024" | bc -l)" "$AGENT_CPU"

if [ -n "${BENCH_SKIP_RSYSLOG:-}" ]; then
	exit 0
fi

# --- rsyslog -------------------------------------------------------------
MODDIR=$(dirname "$(ls /usr/lib/*/rsyslog/omkafka.so | head -1)")
mkdir -p "$WORK/rsyslog"
rm -rf "$WORK/rsyslog/"*
cat >"$WORK/rsyslog.conf" <<EOF
global(workDirectory="$WORK/rsyslog" maxMessageSize="8k")
module(load="$MODDIR/imfile.so")
module(load="$MODDIR/omkafka.so")
main_queue(queue.type="Direct")
template(name="msgonly" type="string" string="%msg%")
ruleset(name="tokafka" queue.type="LinkedList" queue.size="200000" queue.dequeueBatchSize="4096") {
  action(type="omkafka" broker=["$BROKER"] topic="bench-rsyslog" template="msgonly"
         partitions.number="1"
         confParam=["compression.codec=$COMPRESSION", "queue.buffering.max.messages=1000000",
                    "batch.num.messages=10000", "linger.ms=10", "acks=all"])
}
input(type="imfile" File="$INPUT" Tag="bench" ruleset="tokafka" freshStartTail="off" reopenOnTruncate="on")
EOF
log "rsyslog: shipping $LINES lines"
start=$(now)
rsyslogd -n -f "$WORK/rsyslog.conf" -i "$WORK/rsyslog.pid" >"$WORK/rsyslog.log" 2>&1 &
RPID=$!
PIDS+=($RPID)
wait_for bench-rsyslog $RPID
end=$(now)
RS_HWM=$(awk '/VmHWM/ { print $2 }' /proc/$RPID/status)
kill $RPID
wait $RPID || true
RS_SECS=$(echo "$end - $start" | bc -l)
RS_RATE=$(echo "$LINES / $RS_SECS" | bc -l)
printf 'rsyslog: %d lines in %.2fs = %.0f lines/s, peak RSS %.1f MiB\n' \
	"$LINES" "$RS_SECS" "$RS_RATE" "$(echo "$RS_HWM / 1024" | bc -l)"
printf 'ratio:   agent/rsyslog = %.2fx (target >= 2x, agent RSS target < 64 MiB)\n' \
	"$(echo "$AGENT_RATE / $RS_RATE" | bc -l)"
