#!/usr/bin/env bash
# fuzz.sh: run every Fuzz target in the module for $FUZZTIME (default 5m)
# each, one after another. New crashers land in the package's
# testdata/fuzz/<Target>/ and are replayed by `go test` from then on.
#
# Environment: FUZZTIME (5m), PKGS (./...), FUZZ_PARALLEL (GOMAXPROCS for
# the fuzzing workers; default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

FUZZTIME="${FUZZTIME:-5m}"
PKGS="${PKGS:-./...}"
parallel=()
if [ -n "${FUZZ_PARALLEL:-}" ]; then
	parallel=(-parallel "$FUZZ_PARALLEL")
fi

found=0
for pkg in $(go list "$PKGS"); do
	targets="$(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)"
	for target in $targets; do
		found=1
		echo "== fuzz $pkg $target for $FUZZTIME" >&2
		go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "${parallel[@]}"
	done
done
if [ "$found" -eq 0 ]; then
	echo "fuzz: no Fuzz targets found in $PKGS" >&2
fi
