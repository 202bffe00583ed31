#!/usr/bin/env bash
# Headless Chromium and its WebDriver from Debian, for the tests that open the gateway's
# page in a real browser (tests/gateway/test_browser.py).
#
#   scripts/install-browser.sh     # prints the chromium and chromedriver paths
#
# Idempotent: does nothing when both are on PATH. Installs Debian's `chromium` and
# `chromium-driver` packages (the driver matches the browser by construction), as root or
# through passwordless sudo; anything else gets a message saying what to install.
set -euo pipefail

found() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }

if ! found; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-browser.sh: no apt-get; install Chromium and a matching chromedriver" \
            "and put both on PATH" >&2
        exit 1
    fi
    as_root=()
    if [[ $(id -u) -ne 0 ]]; then
        if sudo -n true 2>/dev/null; then
            as_root=(sudo -n)
        else
            echo "install-browser.sh: needs root (or passwordless sudo) for:" \
                "apt-get install chromium chromium-driver" >&2
            exit 1
        fi
    fi
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    echo "install-browser.sh: installing Debian's chromium and chromium-driver ..." >&2
    install() {
        DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q \
            --no-install-recommends chromium chromium-driver >"$log" 2>&1
    }
    if ! install; then
        "${as_root[@]}" apt-get update -q >>"$log" 2>&1 || true
        install || { tail -20 "$log" >&2; echo "install-browser.sh: apt-get install failed" >&2; exit 1; }
    fi
fi
found || { echo "install-browser.sh: chromium or chromedriver still missing" >&2; exit 1; }
command -v chromium
command -v chromedriver
