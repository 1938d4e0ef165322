#!/usr/bin/env bash
# Appender benchmarks: per-call cost beside zap's and slog's io.Discard
# baselines, sustained throughput into a broker, and the kafka-go peer.
# Usage: appender/benchpeer/run.sh [benchtime]   (default 1s)
# With GREGOR_BENCH_BROKER=host:port the throughput benchmark ships to that
# broker (e.g. a `gregor broker` process) instead of an in-process one.
set -euo pipefail
cd "$(dirname "$0")"
bt=${1:-1s}
echo "== per log call (appender vs io.Discard baselines) =="
(cd .. && go test -run '^$' -bench 'Zap|Slog' -benchtime "$bt" -count 3 .)
echo "== sustained throughput into a broker =="
(cd .. && go test -run '^$' -bench 'Throughput' -benchtime 1000000x .)
echo "== peer: kafka-go (slog-kafka's transport) vs the appender, same broker =="
go test -run '^$' -bench . -benchtime "$bt" .
echo "== peer: samber/slog-kafka itself =="
if go get github.com/samber/slog-kafka/v2 >/dev/null 2>&1; then
	go test -tags slogkafka -run '^$' -bench SlogKafka -benchtime "$bt" .
else
	echo "github.com/samber/slog-kafka/v2 is not available from the module proxy; skipped"
fi
