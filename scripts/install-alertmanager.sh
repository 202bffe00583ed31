#!/usr/bin/env bash
# Make Debian's Alertmanager binaries (alertmanager, amtool) available to the tests --
# WITHOUT installing the package (no systemd unit, no service, no user): the .deb is
# downloaded and unpacked into .tools/alertmanager, as scripts/install-prometheus.sh does
# for Prometheus.
#
#   scripts/install-alertmanager.sh      # prints the bin dir, e.g. .../.tools/alertmanager/usr/bin
#
# Idempotent: does nothing when .tools/alertmanager/usr/bin/{alertmanager,amtool} exist.
# Needs apt (Debian/Ubuntu). Debian 12 ships Alertmanager 0.25.
#
# The server is usr/bin/alertmanager, a copy of Debian's usr/bin/prometheus-alertmanager
# with ONE change. Debian's build does not embed the default notification templates, as
# upstream's does: it reads them from /usr/share/prometheus/alertmanager, a directory
# compiled into the binary, and refuses every config when they are not there. Unpacked
# here that directory does not exist (and creating it would be installing the package by
# hand), so the copy has that compiled-in path rewritten to the relative path
# `usr/share/prometheus/alertmanager/` (same length, so nothing else in the binary
# moves): started with .tools/alertmanager as its working directory (tests/helpers/
# alertmanager.py does so), it reads the package's own templates from there. amtool and
# the original server are left as Debian built them.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$repo/.tools/alertmanager"
bin="$dest/usr/bin"
templates_dir="/usr/share/prometheus/alertmanager"
relative_dir="usr/share/prometheus/alertmanager/"

if [[ -x "$bin/alertmanager" && -x "$bin/amtool" ]]; then
    echo "$bin"
    exit 0
fi

for tool in apt-get dpkg-deb python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-alertmanager.sh: '$tool' not found; this script needs a Debian/Ubuntu" \
            "system with apt and python3." >&2
        exit 1
    fi
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if ! (cd "$tmp" && apt-get download prometheus-alertmanager) >"$tmp/download.log" 2>&1; then
    echo "install-alertmanager.sh: 'apt-get download prometheus-alertmanager' failed;" \
        "running apt-get update" >&2
    if ! apt-get update >"$tmp/update.log" 2>&1; then
        cat "$tmp/download.log" "$tmp/update.log" >&2
        echo "install-alertmanager.sh: 'apt-get update' failed (it needs root)." >&2
        exit 1
    fi
    if ! (cd "$tmp" && apt-get download prometheus-alertmanager) >"$tmp/download.log" 2>&1; then
        cat "$tmp/download.log" >&2
        echo "install-alertmanager.sh: 'apt-get download prometheus-alertmanager' failed" \
            "after apt-get update." >&2
        exit 1
    fi
fi

shopt -s nullglob
debs=("$tmp"/prometheus-alertmanager_*.deb)
if [[ ${#debs[@]} -ne 1 ]]; then
    echo "install-alertmanager.sh: expected one prometheus-alertmanager_*.deb in $tmp," \
        "found ${#debs[@]}" >&2
    exit 1
fi

# unpack into a staging dir first so an interrupted run never leaves a half-filled $dest
stage="$tmp/stage"
dpkg-deb -x "${debs[0]}" "$stage"
for tool in prometheus-alertmanager amtool; do
    if [[ ! -x "$stage/usr/bin/$tool" ]]; then
        echo "install-alertmanager.sh: ${debs[0]##*/} contains no usr/bin/$tool" >&2
        exit 1
    fi
done
if [[ ! -f "$stage$templates_dir/default.tmpl" ]]; then
    echo "install-alertmanager.sh: ${debs[0]##*/} has no $templates_dir/default.tmpl" >&2
    exit 1
fi

# The server copy with the templates' directory made relative (see the header). A build
# that no longer names the directory embeds its templates: then it is copied unchanged.
python3 - "$stage/usr/bin/prometheus-alertmanager" "$stage/usr/bin/alertmanager" \
    "$templates_dir" "$relative_dir" <<'EOF'
import os
import sys

source, target, old, new = sys.argv[1], sys.argv[2], sys.argv[3].encode(), sys.argv[4].encode()
assert len(old) == len(new), (old, new)
data = open(source, "rb").read()
count = data.count(old)
with open(target, "wb") as out:
    out.write(data.replace(old, new))
os.chmod(target, 0o755)
print(f"install-alertmanager.sh: {count} reference(s) to {old.decode()} made relative", file=sys.stderr)
EOF

mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$stage" "$dest"

"$bin/alertmanager" --version >&2
echo "$bin"
