#!/usr/bin/env bash
# Make sure the dashboard's browser test has what it drives: Debian's headless Chromium
# (/usr/bin/chromium) and its WebDriver (/usr/bin/chromedriver). Installs the `chromium` and
# `chromium-driver` packages when either is missing (needs root, as CI has), refreshing the
# package lists only when the install fails without them. Says what it does on stderr.
set -euo pipefail

say() { printf 'browser.sh: %s\n' "$*" >&2; }

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    say "chromium and chromedriver are there"
    exit 0
fi

if ! command -v apt-get >/dev/null; then
    say "no apt-get here: install Chromium and its WebDriver as /usr/bin/chromium and /usr/bin/chromedriver"
    exit 1
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null; then
        say "installing chromium and chromium-driver needs root (or sudo)"
        exit 1
    fi
    sudo=(sudo)
fi

install() {
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends \
        chromium chromium-driver >&2
}

say "installing chromium and chromium-driver (apt-get install)"
if ! install; then
    say "the install failed: apt-get update, then again"
    "${sudo[@]}" apt-get update >&2
    install
fi

for program in /usr/bin/chromium /usr/bin/chromedriver; do
    if [[ ! -x $program ]]; then
        say "$program is still missing after the install"
        exit 1
    fi
done
say "installed: $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
