#!/usr/bin/env bash
# Run every check and test of coco, as CI does: formatting, lints, unit and integration
# tests on the embedded store and against a real MongoDB-wire server.
#
# The MongoDB tests use $COCO_TEST_MONGO_URL when it is set (any real MongoDB); otherwise
# this script builds (once, cached outside the clone) and starts an embedded FerretDB
# server on a free loopback port, and stops it at the end. The dashboard's browser test
# drives Debian's headless Chromium: tests/browser.sh installs it when missing (as root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

if [[ -z "${COCO_TEST_MONGO_URL:-}" ]]; then
    step "starting the MongoDB-compatible test server (FerretDB)"
    eval "$(tests/mongo_server.sh start)"
    trap 'eval "$(tests/mongo_server.sh stop)" || true' EXIT
fi

step "headless Chromium for the dashboard's browser test (tests/browser.sh)"
tests/browser.sh

step "iproute2 for the fleet tests' network namespaces (tests/netns.sh)"
tests/netns.sh

step "cargo test (embedded store and MongoDB at the test server)"
cargo test --locked --all-targets
