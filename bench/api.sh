#!/usr/bin/env bash
# The API benchmarks in one command: the read latency of GET /api/v1/runs?limit=50 with
# 100,000 runs in the store (against the same page read through the library, and a store of
# 100), the latency of the event stream GET /api/v1/events (against the poller's interval
# and one poll round), and the idle cost of 16 open event streams (against none) — on the
# embedded store and on a MongoDB-wire server. See docs/benchmarks.md.
#
#   bench/api.sh                          # everything, both stores (about 8 minutes)
#   bench/api.sh --store embedded         # no server needed (about 3.5 minutes)
#   bench/api.sh --only reads --requests 2000 …   # any api_bench option
#   bench/api.sh --help                   # the options
#
# Builds coco and the benchmark in release mode. FerretDB: uses $COCO_TEST_MONGO_URL when
# set (any MongoDB-compatible server; each store size gets a database of its own, dropped
# afterwards), otherwise starts the test server of tests/mongo_server.sh and stops it at
# the end (its pid, COCO_TEST_MONGO_PID, lets the idle benchmark read its CPU too).
# Progress goes to stderr; the figures (Markdown) to stdout. Exits non-zero only when a
# benchmark could not run: every figure is a measurement.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

args=" $* "
if [[ "$args" == *" --help "* || "$args" == *" -h "* ]]; then
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    echo >&2
fi

echo "== cargo build --release --bin coco --example api_bench" >&2
cargo build --release --locked --bin coco --example api_bench >&2

if [[ "$args" == *" --help "* || "$args" == *" -h "* ]]; then
    exec target/release/examples/api_bench --help
fi

needs_server=1
if [[ "$args" == *" --store embedded "* || "$args" == *" --store=embedded "* ]]; then
    needs_server=0
fi
if [[ $needs_server == 1 && -z "${COCO_TEST_MONGO_URL:-}" ]]; then
    echo "== starting the MongoDB-compatible test server (FerretDB)" >&2
    eval "$(tests/mongo_server.sh start)"
    trap 'eval "$(tests/mongo_server.sh stop)" || true' EXIT
fi

status=0
target/release/examples/api_bench "$@" || status=$?
exit "$status"
