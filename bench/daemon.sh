#!/usr/bin/env bash
# The daemon benchmarks of issue 4 in one command: save-to-applied latency on a home of 500
# projects (and its start-up reconcile), fire precision of an every-second job, the idle
# daemon's CPU and memory, and the time to restart an app. See docs/benchmarks.md.
#
#   bench/daemon.sh                          # everything, embedded store (about 5 minutes)
#   bench/daemon.sh --only save,fire --saves 200 …   # any daemon_bench option
#   bench/daemon.sh --store both             # also on a MongoDB-wire server (FerretDB)
#
# Builds coco and the benchmark in release mode. The embedded store needs no server. For
# --store mongo|both: uses $COCO_TEST_MONGO_URL when set (any MongoDB-compatible server; each
# benchmark creates and drops its own database), otherwise starts the test server of
# tests/mongo_server.sh and stops it at the end. Progress goes to stderr; the figures
# (Markdown) to stdout. Exits non-zero when a check fails (a save never applied, a fire missed
# or doubled, an app restart that did not end healthy), or a benchmark could not run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== cargo build --release --bin coco --example daemon_bench" >&2
cargo build --release --locked --bin coco --example daemon_bench >&2

args=" $* "
needs_server=0
if [[ "$args" =~ \ --store(=|\ )(mongo|both)\  ]]; then
    needs_server=1
fi
if [[ $needs_server == 1 && -z "${COCO_TEST_MONGO_URL:-}" ]]; then
    echo "== starting the MongoDB-compatible test server (FerretDB)" >&2
    eval "$(tests/mongo_server.sh start)"
    trap 'eval "$(tests/mongo_server.sh stop)" || true' EXIT
fi

status=0
target/release/examples/daemon_bench "$@" || status=$?
exit "$status"
