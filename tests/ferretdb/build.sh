#!/usr/bin/env bash
# Build the embedded-FerretDB test server once and print the binary's path.
#
# The binary is cached outside the clone, keyed by a hash of the sources:
#   ${COCO_TEST_CACHE:-$HOME/.cache/coco-test}/ferretdb-<hash>
# A later run with unchanged sources only prints the path. Go's own module and
# build caches (GOMODCACHE, GOCACHE) are used as configured, so they persist too.
# All build output goes to stderr; stdout carries only the path.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${COCO_TEST_CACHE:-${HOME:-/tmp}/.cache/coco-test}"

hash="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" "$here/build.sh" | sha256sum | cut -c1-16)"
bin="$cache/ferretdb-$hash"

if [[ ! -x "$bin" ]]; then
    command -v go >/dev/null 2>&1 || { echo "build.sh: 'go' not found in PATH" >&2; exit 1; }
    mkdir -p "$cache"
    tmp="$(mktemp "$cache/.ferretdb-build.XXXXXX")"
    trap 'rm -f "$tmp"' EXIT
    # modernc.org/sqlite is pure Go, so no cgo is needed; PostgreSQL backend is left out.
    (cd "$here" && CGO_ENABLED=0 go build -trimpath -tags ferretdb_no_postgresql \
        -ldflags '-s -w' -o "$tmp" .) >&2
    chmod 755 "$tmp"
    mv -f "$tmp" "$bin"   # atomic: concurrent builders never see a partial file
    trap - EXIT
fi

echo "$bin"
