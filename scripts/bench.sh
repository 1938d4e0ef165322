#!/usr/bin/env bash
# bench.sh: run the same franz-go workloads (`gregor perf`) against gregor,
# franz-go's kfake with kfake.DataDir, and kfake in memory, one target at a
# time, and print a comparison table. Ratios matter more than absolute
# numbers: these machines are shared and absolute numbers drift.
#
# Workloads (per target, on a fresh broker and data dir):
#   produce-100B-1p  $SMALL_RECORDS records of 100 B to 1 partition, acks=1,
#                    franz-go's default linger (10 ms)
#   produce-100B-1p-linger0  the same with --linger 0: the client sends
#                    whatever has accumulated the moment the previous
#                    request is answered
#   produce-1KB-4p   $LARGE_RECORDS records of 1 KB across 4 partitions, acks=1
#   consume-100B-1p  read the first topic back
#   consume-1KB-4p   read the 1 KB topic back
#   e2e-5000rps      perf e2e at $E2E_RATE records/s for $E2E_DURATION (p50/p99)
#
# The null broker (internal/benchtools/nullbroker) runs the produce
# workloads only: it acknowledges every produce without checking or storing
# anything, so its records/s is what this client reaches against a broker
# that costs nothing, shown as null/kfake(DataDir).
#
# Before each workload the script runs sync(1), so that no workload runs
# while the previous one's data is still being written to disk.
#
# Everything runs $ROUNDS times (default 5), rounds outermost so that a
# noisy neighbour hurts every target alike, and the targets' order rotates
# from round to round; the table shows medians.
#
# Each round has two phases. The 100 B workloads take well under a second
# each, so a spell of noise on a shared VM (a busy neighbour on the same
# core runs this client 30-40% slower for minutes at a time) could decide
# one target's runs and not another's. In the first phase every target is
# started at once (idle, they cost nothing), and each 100 B workload runs
# against the targets in turn, seconds apart, $SMALL_REPEATS times (default
# 3; each produce run to a new topic), so that such a spell hits them
# alike. The 1 KB workloads and e2e, which hold gigabytes, then run one
# target at a time, each on a fresh server.
#
# Results: bench-results/<timestamp>/ (raw JSON and logs) and the table in
# bench-results/latest.txt.
#
# Environment: PAGE_REPORTING (pause; keep: see below), SMALL_RECORDS (2000000), LARGE_RECORDS (2000000),
# E2E_RATE (5000), E2E_DURATION (20s), ROUNDS (5), SMALL_REPEATS (3),
# TARGETS ("gregor kfake-disk kfake-mem null").
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

SMALL_RECORDS="${SMALL_RECORDS:-2000000}"
LARGE_RECORDS="${LARGE_RECORDS:-2000000}"
E2E_RATE="${E2E_RATE:-5000}"
E2E_DURATION="${E2E_DURATION:-20s}"
TARGETS="${TARGETS:-gregor kfake-disk kfake-mem null}"
ROUNDS="${ROUNDS:-5}"
SMALL_REPEATS="${SMALL_REPEATS:-3}"

mkdir -p bin bench-results
go build -o bin/gregor ./cmd/gregor
go build -o bin/kfakeserver ./internal/benchtools/kfakeserver
go build -o bin/benchctl ./internal/benchtools/benchctl
go build -o bin/nullbroker ./internal/benchtools/nullbroker

stamp="$(date +%Y%m%d-%H%M%S)"
out="bench-results/$stamp"
mkdir -p "$out"
work="$(mktemp -d "${TMPDIR:-/tmp}/gregor-bench.XXXXXX")"

# The running servers: target name -> pid, and -> address.
declare -A server_pid=() server_addr=()
# stop_target NAME: stop NAME's server and remove its data.
stop_target() {
	local name="$1" pid="${server_pid[$1]:-}"
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	unset "server_pid[$name]" "server_addr[$name]"
	rm -rf "${work:?}/$name"
}

# Free page reporting (virtio-balloon, on KVM and Firecracker guests) hands
# every free 2 MiB block back to the host within seconds, and the next
# touch of that memory faults it in again through the hypervisor. On the
# VM these figures come from, touching 3 GB took 7.3 s of system time when
# the memory had been handed back and 1.1 s when it had not; writing the
# 1 KB workload's 2 GB into the page cache of a fresh server cost gregor
# 0.41-1.77 s of CPU per million records with reporting on and 0.24-0.27
# with it paused (kfake 0.91-1.23 and 0.67-0.78), whichever server happened
# to reuse memory another had just freed. That is the hypervisor's cost,
# not the broker's, and a long-running broker, whose page cache stays
# allocated, does not pay it; so while the bench runs, reporting is paused
# (when this runs as root; PAGE_REPORTING=keep leaves it alone) and the old
# setting is restored at exit. The table's header says which. Pausing
# keeps memory from going back to the host, but what went back before
# stays there: in a round run with reporting paused, gregor's first 100 B
# produce (on memory just freed by the build) cost 0.045 s of CPU per
# million records and the next ones, on memory the host held, 0.23-0.27
# (kfake 0.21 then 0.34). So once paused, the bench touches the free
# memory once, all but 1 GiB and at most 16 GiB, more than a round holds
# (benchctl touchfree: about 30 s for 22 GB when cold, 5 s when not), and
# gives it back, host-backed for the whole run.
reporting_param=/sys/module/page_reporting/parameters/page_reporting_order
reporting_saved=""
reporting_note="free page reporting: not present"
cleanup() {
	local name
	for name in "${!server_pid[@]}"; do
		stop_target "$name"
	done
	rm -rf "$work"
	if [ -n "$reporting_saved" ]; then
		echo "$reporting_saved" >"$reporting_param" || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -e "$reporting_param" ]; then
	reporting_note="free page reporting: left on (order $(cat "$reporting_param"); not root, or PAGE_REPORTING=keep)"
	if [ "${PAGE_REPORTING:-pause}" != keep ] && [ -w "$reporting_param" ]; then
		old="$(cat "$reporting_param")"
		# No free block is of order 11 (the largest is 10), so nothing
		# qualifies for reporting.
		if echo 11 >"$reporting_param" 2>/dev/null; then
			reporting_saved="$old"
			reporting_note="free page reporting: paused for the run (page_reporting_order $old -> 11, restored at exit); $(bin/benchctl touchfree --max-mib 16384)"
		fi
	fi
fi

# start_target NAME: start a fresh server for NAME, with an empty data dir.
start_target() {
	local name="$1" port addr
	port="$(bin/benchctl freeport)"
	addr="127.0.0.1:$port"
	local data="$work/$name"
	rm -rf "$data"
	mkdir -p "$data"
	case "$name" in
	gregor)
		bin/gregor broker --listen "$addr" --http-addr "" --data-dir "$data" \
			--log-level warn >>"$out/$name-server.log" 2>&1 &
		;;
	kfake-disk)
		bin/kfakeserver --port "$port" --data-dir "$data" >>"$out/$name-server.log" 2>&1 &
		;;
	kfake-mem)
		bin/kfakeserver --port "$port" >>"$out/$name-server.log" 2>&1 &
		;;
	null)
		bin/nullbroker --port "$port" >>"$out/$name-server.log" 2>&1 &
		;;
	*)
		echo "bench: unknown target $name" >&2
		exit 2
		;;
	esac
	server_pid[$name]=$!
	server_addr[$name]="$addr"
	if ! bin/benchctl wait --addr "$addr" --timeout 60s >/dev/null; then
		echo "bench: $name did not start; its log:" >&2
		cat "$out/$name-server.log" >&2
		exit 1
	fi
}

# run_perf TARGET WORKLOAD ROUND ARGS...: run one `gregor perf` workload,
# saving its JSON summary; a failed run is reported and leaves no result.
run_perf() {
	local target="$1" workload="$2" round="$3"
	shift 3
	local base="$out/$target-$workload.r$round"
	echo "== round $round: $target $workload" >&2
	# The previous workload's writes go to disk first, for every target
	# alike: gregor fsyncs within flush.ms, kfake leaves them to the
	# kernel, and either way writing gigabytes back during the next
	# workload measured the disk, not that workload.
	sync
	sleep 0.5
	if bin/gregor perf "$@" -b "${server_addr[$target]}" --json --broker-pid "${server_pid[$target]}" \
		>"$base.json.tmp" 2>"$base.log"; then
		mv "$base.json.tmp" "$base.json"
		tail -n 1 "$base.json" >&2
	else
		echo "bench: $target $workload failed; see $base.log" >&2
		tail -n 5 "$base.log" >&2 || true
		rm -f "$base.json.tmp"
	fi
}

# rotated TARGETS... by ROUND: round 1 starts with the first target, round
# 2 with the second, and so on, so that no target always runs first (on a
# fresh VM the first writes also pay for the guest's first touch of its
# memory) or always after the same one.
rotated() {
	local round="$1"
	shift
	local n=$# i
	for ((i = 0; i < n; i++)); do
		local k=$(((round - 1 + i) % n + 1))
		printf '%s ' "${!k}"
	done
}

for round in $(seq 1 "$ROUNDS"); do
	# shellcheck disable=SC2086 # TARGETS is a list
	order="$(rotated "$round" $TARGETS)"
	stores="$(for t in $order; do [ "$t" = null ] || printf '%s ' "$t"; done)" # null keeps nothing to read

	# Phase 1: the 100 B workloads, every target up, taking turns.
	for target in $order; do
		start_target "$target"
	done
	for rep in $(seq 1 "$SMALL_REPEATS"); do
		# The first run's topic is the one consume-100B-1p reads.
		suffix="" run="$round"
		if [ "$rep" -gt 1 ]; then
			suffix="-$rep" run="$round.$rep"
		fi
		for target in $order; do
			run_perf "$target" produce-100B-1p "$run" produce -t "bench-small$suffix" --partitions 1 \
				--records "$SMALL_RECORDS" --record-size 100 --acks 1
		done
		for target in $order; do
			run_perf "$target" produce-100B-1p-linger0 "$run" produce -t "bench-small-linger0$suffix" --partitions 1 \
				--records "$SMALL_RECORDS" --record-size 100 --acks 1 --linger 0
		done
		for target in $stores; do
			run_perf "$target" consume-100B-1p "$run" consume -t bench-small --records "$SMALL_RECORDS"
		done
	done
	for target in $order; do
		stop_target "$target"
	done

	# Phase 2: the 1 KB workloads and e2e, one target at a time.
	for target in $order; do
		start_target "$target"
		run_perf "$target" produce-1KB-4p "$round" produce -t bench-large --partitions 4 \
			--records "$LARGE_RECORDS" --record-size 1024 --acks 1
		if [ "$target" != null ]; then
			run_perf "$target" consume-1KB-4p "$round" consume -t bench-large --records "$LARGE_RECORDS"
			run_perf "$target" e2e-5000rps "$round" e2e -t bench-e2e --partitions 1 \
				--rate "$E2E_RATE" --duration "$E2E_DURATION" --record-size 100
		fi
		stop_target "$target"
	done
done

{
	echo "gregor benchmark $stamp on $(hostname) ($(nproc) cores), go $(go env GOVERSION)"
	echo "records: small=$SMALL_RECORDS x 100 B, large=$LARGE_RECORDS x 1 KB; e2e at $E2E_RATE rec/s for $E2E_DURATION; $ROUNDS round(s), 100 B workloads $SMALL_REPEATS times a round"
	echo "$reporting_note"
	echo
	bin/benchctl table "$out"
} | tee "$out/table.txt"
cp "$out/table.txt" bench-results/latest.txt
echo "results in $out; table in bench-results/latest.txt" >&2
