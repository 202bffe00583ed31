#!/usr/bin/env bash
# quix-streams in a virtualenv of its own, .venv-quix, for the pipeline benchmark's quix
# peer (benchmarks/quix_peer.py, run by benchmarks/pipeline_bench.py --agent quix).
#
#   scripts/install-quix.sh     # prints the peer's interpreter, .venv-quix/bin/python
#
# Its own venv because quixstreams requires pydantic < 2.14, and arbstream pins a newer one
# (constraints.txt). Every package is pinned in benchmarks/quix-constraints.txt.
# Idempotent: does nothing when .venv-quix was installed from the constraints file as it
# is now (its sha256 is kept in .venv-quix/.installed); a changed file reinstalls.
# PYTHON (default python3.11) makes the venv; the peer needs Python >= 3.11 (tomllib).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv-quix"
constraints="$repo/benchmarks/quix-constraints.txt"
stamp="$venv/.installed"
python="${PYTHON:-python3.11}"

wanted="$(sha256sum "$constraints" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    echo "$venv/bin/python"
    exit 0
fi

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "install-quix.sh: needs Python >= 3.11 as '$python' (set PYTHON=...)" >&2
    exit 1
fi
version="$(sed -n 's/^quixstreams==//p' "$constraints")"
if [[ -z "$version" ]]; then
    echo "install-quix.sh: $constraints pins no quixstreams" >&2
    exit 1
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
echo "install-quix.sh: installing quixstreams $version into $venv ..." >&2
rm -f "$stamp"
test -x "$venv/bin/python" || "$python" -m venv "$venv"
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c "$constraints" "quixstreams==$version" >"$log" 2>&1; then
    tail -20 "$log" >&2
    echo "install-quix.sh: pip install failed" >&2
    exit 1
fi
"$venv/bin/python" -c 'import quixstreams' >>"$log" 2>&1 || {
    tail -20 "$log" >&2
    echo "install-quix.sh: quixstreams does not import in $venv" >&2
    exit 1
}
echo "$wanted" >"$stamp"
echo "$venv/bin/python"
