#!/usr/bin/env bash
# Make Debian's Prometheus binaries (prometheus, promtool) available to the tests and to
# people without Docker -- WITHOUT installing the package (no systemd unit, no service,
# no prometheus user): the .deb is downloaded and unpacked into .tools/prometheus.
#
#   scripts/install-prometheus.sh        # prints the bin dir, e.g. .../.tools/prometheus/usr/bin
#
# Idempotent: does nothing when .tools/prometheus/usr/bin/promtool already exists.
# Needs apt (Debian/Ubuntu). The binaries are Go programs linked only against libc; the
# HTTP API, scraping and rule evaluation need no other files. The package's Depends (libjs-*,
# fonts) only serve the classic web UI's static assets, which the tests and the API do not
# use (their symlinks into /usr/share/javascript may dangle); console templates are optional.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$repo/.tools/prometheus"
bin="$dest/usr/bin"

if [[ -x "$bin/promtool" && -x "$bin/prometheus" ]]; then
    echo "$bin"
    exit 0
fi

for tool in apt-get dpkg-deb; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-prometheus.sh: '$tool' not found; this script needs a Debian/Ubuntu" \
            "system with apt. Otherwise install Prometheus >= 2.42 yourself and put" \
            "prometheus and promtool on PATH." >&2
        exit 1
    fi
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# apt-get download fetches into the current directory, as the invoking user (no root needed
# unless the package lists must be refreshed first)
if ! (cd "$tmp" && apt-get download prometheus) >"$tmp/download.log" 2>&1; then
    echo "install-prometheus.sh: 'apt-get download prometheus' failed; running apt-get update" >&2
    if ! apt-get update >"$tmp/update.log" 2>&1; then
        cat "$tmp/download.log" "$tmp/update.log" >&2
        echo "install-prometheus.sh: 'apt-get update' failed (it needs root)." >&2
        exit 1
    fi
    if ! (cd "$tmp" && apt-get download prometheus) >"$tmp/download.log" 2>&1; then
        cat "$tmp/download.log" >&2
        echo "install-prometheus.sh: 'apt-get download prometheus' failed after apt-get update." >&2
        exit 1
    fi
fi

shopt -s nullglob
debs=("$tmp"/prometheus_*.deb)
if [[ ${#debs[@]} -ne 1 ]]; then
    echo "install-prometheus.sh: expected one prometheus_*.deb in $tmp, found ${#debs[@]}" >&2
    exit 1
fi

# unpack into a staging dir first so an interrupted run never leaves a half-filled $dest
stage="$tmp/stage"
dpkg-deb -x "${debs[0]}" "$stage"
for tool in prometheus promtool; do
    if [[ ! -x "$stage/usr/bin/$tool" ]]; then
        echo "install-prometheus.sh: ${debs[0]##*/} contains no usr/bin/$tool" >&2
        exit 1
    fi
done
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$stage" "$dest"

"$bin/promtool" --version >&2
echo "$bin"
