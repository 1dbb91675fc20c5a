#!/usr/bin/env bash
# The queue benchmarks of issue 3 in one command: throughput against `xargs -P2`, pick-up
# latency, exactly once under contention, crash recovery — on the embedded store and on a
# MongoDB-wire server. See docs/benchmarks.md.
#
#   bench/queue.sh                      # everything, both stores (about 10 minutes)
#   bench/queue.sh --store embedded     # no server needed
#   bench/queue.sh --only latency,crash --mongo-runs 1000 …   # any queue_bench option
#
# Builds coco and the benchmark in release mode. FerretDB: uses $COCO_TEST_MONGO_URL when
# set (any MongoDB-compatible server; each benchmark creates and drops its own database),
# otherwise starts the test server of tests/mongo_server.sh and stops it at the end.
# Progress goes to stderr; the figures (Markdown) to stdout. Exits non-zero when an
# exactly-once or crash check fails, or a benchmark could not run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== cargo build --release --bin coco --example queue_bench" >&2
cargo build --release --locked --bin coco --example queue_bench >&2

needs_server=1
args=" $* "
if [[ "$args" == *" --store embedded "* || "$args" == *" --store=embedded "* ]]; then
    needs_server=0
fi
if [[ $needs_server == 1 && -z "${COCO_TEST_MONGO_URL:-}" ]]; then
    echo "== starting the MongoDB-compatible test server (FerretDB)" >&2
    eval "$(tests/mongo_server.sh start)"
    trap 'eval "$(tests/mongo_server.sh stop)" || true' EXIT
fi

status=0
target/release/examples/queue_bench "$@" || status=$?
exit "$status"
