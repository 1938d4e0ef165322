#!/usr/bin/env bash
# install-deps.sh: make sure everything `make test` needs is present.
#
# Idempotent and quick when nothing is missing: it only runs
# `apt-get update` (once) and `apt-get install` when a tool is absent.
# Needed: Go (on PATH, from /usr/local/go/bin if installed there) and kcat
# (librdkafka's CLI, used by the e2e tests). Optional: kafkajs (npm), for
# the kafkajs e2e tests, which skip without it.
set -euo pipefail

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
	echo "install-deps: Go is not installed (looked on PATH and in /usr/local/go/bin);" >&2
	echo "install-deps: install Go (see go.mod for the version) from https://go.dev/dl/" >&2
	exit 1
fi

# kafkajs for e2e/kafkajs_test.go, installed into the test's own
# node_modules from the committed package-lock.json, only when missing.
# Without node/npm or the npm registry the kafkajs tests skip (with a
# message saying why), so a failure here is a warning, not an error.
kafkajs_dir="$(cd "$(dirname "$0")/.." && pwd)/e2e/testdata/kafkajs"
if [ ! -f "$kafkajs_dir/node_modules/kafkajs/package.json" ]; then
	if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
		echo "install-deps: installing kafkajs into $kafkajs_dir/node_modules" >&2
		if ! (cd "$kafkajs_dir" && timeout 180 npm ci --no-audit --no-fund --loglevel=error >&2); then
			echo "install-deps: WARNING: npm ci failed; the kafkajs e2e tests will skip" >&2
		fi
	else
		echo "install-deps: WARNING: node/npm not found; the kafkajs e2e tests will skip" >&2
	fi
fi

# Debian packages to install, one per missing command (command:package).
wanted=("kcat:kcat")
missing=()
for pair in "${wanted[@]}"; do
	cmd="${pair%%:*}"
	pkg="${pair#*:}"
	if ! command -v "$cmd" >/dev/null 2>&1; then
		missing+=("$pkg")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: missing ${missing[*]} and apt-get is not available; install them by hand" >&2
	exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo=(sudo)
	else
		echo "install-deps: missing ${missing[*]}; run as root or install sudo" >&2
		exit 1
	fi
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
