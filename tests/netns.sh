#!/usr/bin/env bash
# iproute2 for the fleet tests (tests/it/fleet.rs), which build test hosts as network
# namespaces on a bridge: `ip` is installed with apt-get when missing (as root, or with sudo).
# The fleet tests themselves need root; without it they fail saying so, unless
# COCO_TEST_SKIP_NETNS=1.
set -euo pipefail

say() { printf 'netns.sh: %s\n' "$*" >&2; }

if command -v ip >/dev/null || [[ -x /usr/sbin/ip || -x /sbin/ip ]]; then
    say "iproute2 is there"
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    say "no apt-get here: install iproute2 (the ip command)"
    exit 1
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null; then
        say "installing iproute2 needs root (or sudo)"
        exit 1
    fi
    sudo=(sudo)
fi
install() {
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends iproute2 >&2
}
say "installing iproute2 (apt-get install)"
if ! install; then
    say "the install failed: apt-get update, then again"
    "${sudo[@]}" apt-get update >&2
    install
fi
say "installed: $(ip -V 2>/dev/null || echo iproute2)"
