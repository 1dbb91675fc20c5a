#!/usr/bin/env bash
# Start or stop a throwaway MongoDB-compatible server (embedded FerretDB, SQLite backend)
# for the store tests.
#
#   eval "$(tests/mongo_server.sh start)"   # build (cached), start, export its URL
#   cargo test --test it store
#   eval "$(tests/mongo_server.sh stop)"    # stop it, remove its data, unset the variables
#
# `start` prints shell code on stdout:
#   export COCO_TEST_MONGO_URL=mongodb://127.0.0.1:PORT/; export COCO_TEST_MONGO_PID=PID;
#   export COCO_TEST_MONGO_DIR=DIR
# The server listens on a free loopback port (chosen by the kernel: port 0) and keeps its
# data and log in DIR (a fresh temporary directory). Everything else goes to stderr.
# `stop` uses COCO_TEST_MONGO_PID and COCO_TEST_MONGO_DIR from the environment.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ready_timeout="${COCO_TEST_MONGO_READY_TIMEOUT:-60}"

die() {
    echo "mongo_server.sh: $*" >&2
    exit 1
}

start() {
    local bin dir pid url="" waited=0
    bin="$("$here/ferretdb/build.sh")" || die "building the test server failed"
    dir="$(mktemp -d "${TMPDIR:-/tmp}/coco-mongo.XXXXXX")"
    # Detached (own session) and with no tie to our stdout, so the command substitution
    # around `start` returns while the server keeps running.
    setsid "$bin" -data "$dir/data" 127.0.0.1:0 </dev/null >"$dir/stdout" 2>"$dir/server.log" &
    pid=$!
    echo "$pid" >"$dir/pid"
    while :; do
        url="$(sed -n 's/^ready \(mongodb:\/\/.*\)$/\1/p' "$dir/stdout" | head -n1)"
        [[ -n "$url" ]] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$dir/server.log" >&2 || true
            rm -rf "$dir"
            die "the test server exited before it was ready"
        fi
        if ((waited >= ready_timeout * 10)); then
            kill "$pid" 2>/dev/null || true
            cat "$dir/server.log" >&2 || true
            rm -rf "$dir"
            die "the test server was not ready after ${ready_timeout}s"
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "mongo_server.sh: test server pid $pid at $url (data and log in $dir)" >&2
    printf 'export COCO_TEST_MONGO_URL=%q; export COCO_TEST_MONGO_PID=%q; export COCO_TEST_MONGO_DIR=%q\n' \
        "$url" "$pid" "$dir"
}

stop() {
    local pid="${COCO_TEST_MONGO_PID:-}" dir="${COCO_TEST_MONGO_DIR:-}" waited=0
    [[ -n "$pid" ]] || die "COCO_TEST_MONGO_PID is not set (was the server started with 'eval \"\$(tests/mongo_server.sh start)\"'?)"
    [[ "$pid" =~ ^[0-9]+$ ]] || die "COCO_TEST_MONGO_PID is not a pid: $pid"
    # Only ever signal the server we started: its pid is recorded in its data dir.
    if [[ -n "$dir" && -f "$dir/pid" && "$(cat "$dir/pid")" == "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do
            if ((waited >= 100)); then
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
    elif kill -0 "$pid" 2>/dev/null; then
        die "pid $pid is not the test server recorded in '$dir'; not stopping it"
    fi
    if [[ -n "$dir" && "$(basename "$dir")" == coco-mongo.* && -d "$dir" ]]; then
        rm -rf "$dir"
    fi
    echo "unset COCO_TEST_MONGO_URL COCO_TEST_MONGO_PID COCO_TEST_MONGO_DIR"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
    echo "usage: $0 start|stop   (use as: eval \"\$($0 start)\")" >&2
    exit 2
    ;;
esac
