#!/usr/bin/env bash
# bench-long.sh: write $GB GiB (default 20) of 1 KB records through one
# partition of a gregor broker with `gregor perf produce` (acks=1), one GiB
# per run, printing the throughput of each GiB so the start and the end can
# be compared (the goal: the end within 10% of the start). Then kill -9 the
# broker, restart it, and time how long until it answers Metadata and
# ListOffsets again ("restart-to-serving", goal: under 2 s).
#
# The data dir is $BENCH_LONG_DIR (default: a temp dir under
# bench-results/) and is deleted at the end. It needs $GB GiB plus some
# headroom free.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

GB="${GB:-20}"
RECORD_SIZE=1024
RECORDS_PER_GB=$(((1 << 30) / RECORD_SIZE))

mkdir -p bin bench-results
go build -o bin/gregor ./cmd/gregor
go build -o bin/benchctl ./internal/benchtools/benchctl

data="${BENCH_LONG_DIR:-$(mktemp -d "$PWD/bench-results/long-data.XXXXXX")}"
mkdir -p "$data"
need_kb=$(((GB + 2) * 1024 * 1024))
free_kb="$(df -Pk "$data" | awk 'NR==2 {print $4}')"
if [ "$free_kb" -lt "$need_kb" ]; then
	echo "bench-long: $data has $((free_kb / 1024 / 1024)) GiB free, need $((need_kb / 1024 / 1024)) GiB" >&2
	exit 1
fi

stamp="$(date +%Y%m%d-%H%M%S)"
out="bench-results/long-$stamp"
mkdir -p "$out"
port="$(bin/benchctl freeport)"
addr="127.0.0.1:$port"
topic=long

broker_pid=""
start_broker() {
	bin/gregor broker --listen "$addr" --http-addr "" --data-dir "$data" \
		--log-level warn >>"$out/broker.log" 2>&1 &
	broker_pid=$!
}
cleanup() {
	if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
		kill -TERM "$broker_pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$broker_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$broker_pid" 2>/dev/null || true
		wait "$broker_pid" 2>/dev/null || true
	fi
	rm -rf "$data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_broker
bin/benchctl wait --addr "$addr" --timeout 60s >/dev/null

{
	echo "gregor bench-long $stamp on $(hostname) ($(nproc) cores): $GB GiB of $RECORD_SIZE B records, 1 partition, acks=1"
	printf "%-6s %14s %10s %10s %12s %9s\n" "GiB" "records/s" "MB/s" "seconds" "broker CPU s" "IO stall"
} | tee "$out/summary.txt"

# io_stall prints the share of the last 10 s in which some task waited on
# the disk (Linux pressure stall information), or - where there is none.
io_stall() {
	if [ -r /proc/pressure/io ]; then
		sed -n 's/^some avg10=\([0-9.]*\).*/\1%/p' /proc/pressure/io
	else
		echo -
	fi
}

rates=()
cpus=()
for i in $(seq 1 "$GB"); do
	parts=()
	if [ "$i" -eq 1 ]; then
		parts=(--partitions 1)
	fi
	bin/gregor perf produce -b "$addr" -t "$topic" "${parts[@]}" \
		--records "$RECORDS_PER_GB" --record-size "$RECORD_SIZE" --acks 1 \
		--json --broker-pid "$broker_pid" >"$out/gb-$i.json" 2>>"$out/perf.log"
	line="$(tail -n 1 "$out/gb-$i.json")"
	rps="$(sed -n 's/.*"records_per_sec":\([0-9.e+]*\).*/\1/p' <<<"$line")"
	mbs="$(sed -n 's/.*"mb_per_sec":\([0-9.e+]*\).*/\1/p' <<<"$line")"
	secs="$(sed -n 's/.*"seconds":\([0-9.e+]*\).*/\1/p' <<<"$line")"
	cpu="$(sed -n 's/.*"broker_cpu_seconds":\([0-9.e+]*\).*/\1/p' <<<"$line")"
	rates+=("$mbs")
	cpus+=("${cpu:-0}")
	printf "%-6s %14.0f %10.1f %10.2f %12.2f %9s\n" "$i" "$rps" "$mbs" "$secs" "${cpu:-0}" "$(io_stall)" | tee -a "$out/summary.txt"
done

# Start vs end: mean of the first and of the last three GiB (or fewer).
n=${#rates[@]}
k=$((n < 3 ? n : 3))
start_mean="$(printf "%s\n" "${rates[@]:0:k}" | awk '{s+=$1} END {printf "%.1f", s/NR}')"
end_mean="$(printf "%s\n" "${rates[@]:n-k:k}" | awk '{s+=$1} END {printf "%.1f", s/NR}')"
ratio="$(awk -v a="$end_mean" -v b="$start_mean" 'BEGIN {printf "%.3f", a/b}')"
cpu_start="$(printf "%s\n" "${cpus[@]:0:k}" | awk '{s+=$1} END {printf "%.2f", s/NR}')"
cpu_end="$(printf "%s\n" "${cpus[@]:n-k:k}" | awk '{s+=$1} END {printf "%.2f", s/NR}')"
{
	echo "start (first $k GiB): $start_mean MB/s; end (last $k GiB): $end_mean MB/s; end/start = $ratio (goal >= 0.90)"
	# The broker's own work per GiB: flat from start to end means the log
	# appends in constant time, and a slower end is the disk (see IO stall).
	echo "broker CPU per GiB: start $cpu_start s, end $cpu_end s"
	du -sh "$data" | awk '{print "data dir size: " $1}'
} | tee -a "$out/summary.txt"

# kill -9 and time the restart until Metadata and ListOffsets answer.
kill -KILL "$broker_pid"
wait "$broker_pid" 2>/dev/null || true
t0="$(date +%s%N)"
start_broker
secs="$(bin/benchctl wait --addr "$addr" --topic "$topic" --since-ns "$t0" --timeout 300s)"
end="$(bin/benchctl end-offset --addr "$addr" --topic "$topic")"
{
	echo "restart-to-serving: $secs s (goal < 2 s)"
	echo "records after restart: $end (written: $((GB * RECORDS_PER_GB)))"
} | tee -a "$out/summary.txt"

# Baseline on the same disk: a plain writer appending as many GiB in 1 MiB
# writes with an fsync a second, at the broker's mean rate (no broker, no
# network, no validation).
# Its own end/start is how much the machine slows down as the page cache
# grows and the disk falls behind; read the broker's ratio against it.
# BASELINE=0 skips it.
if [ "${BASELINE:-1}" != 0 ]; then
	kill -TERM "$broker_pid" 2>/dev/null || true
	wait "$broker_pid" 2>/dev/null || true
	broker_pid=""
	rm -rf "${data:?}"/*
	pace="$(printf "%s\n" "${rates[@]}" | awk '{s+=$1} END {printf "%.1f", s/NR}')"
	bin/benchctl diskwrite --file "$data/baseline.tmp" --gib "$GB" --mbps "$pace" >"$out/baseline.txt"
	bstart="$(head -n "$k" "$out/baseline.txt" | awk '{s+=$2} END {printf "%.1f", s/NR}')"
	bend="$(tail -n "$k" "$out/baseline.txt" | awk '{s+=$2} END {printf "%.1f", s/NR}')"
	bcpu_start="$(head -n "$k" "$out/baseline.txt" | awk '{s+=$3} END {printf "%.2f", s/NR}')"
	bcpu_end="$(tail -n "$k" "$out/baseline.txt" | awk '{s+=$3} END {printf "%.2f", s/NR}')"
	bratio="$(awk -v a="$bend" -v b="$bstart" 'BEGIN {printf "%.3f", a/b}')"
	{
		echo "baseline, plain file writer on the same disk at up to $pace MB/s: start $bstart MB/s, end $bend MB/s, end/start = $bratio; CPU per GiB start $bcpu_start s, end $bcpu_end s"
	} | tee -a "$out/summary.txt"
fi
cp "$out/summary.txt" bench-results/latest-long.txt
echo "results in $out" >&2
