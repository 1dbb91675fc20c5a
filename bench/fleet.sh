#!/usr/bin/env bash
# The fleet benchmarks of issue 14: failover time (the owner of an app SIGKILLed → the app
# healthy on another host, median of 5) and fleet throughput (runs/s of `true` with 1, 2 and 3
# hosts of 2 slots on one FerretDB, store commands per run, the store's share of a run).
# The hosts are network namespaces (as in tests/it/fleet.rs): needs root and iproute2.
#
#   bench/fleet.sh                        # both (about 3 minutes)
#   COCO_BENCH_RUNS=600 bench/fleet.sh    # more runs per throughput row (default 300)
#
# Builds in release mode; figures on stdout (Markdown), progress on stderr. See
# docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tests/netns.sh >&2
cargo test --release --locked --test it -- --ignored --test-threads 1 --nocapture \
    fleet::bench:: 2> >(grep -v '^\s*$' >&2)
