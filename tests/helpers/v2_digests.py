"""Digests of what the version 2 engine computed on generated market cases: the oracle of
"a version 2 config and an input without status records give exactly the version 2
output" (exact, but for the last bits of the windows' mean, std and z, as in
helpers/v1_digests.py).

The engine before version 3 is commit 5b213b7 of this repository; its outputs on
``SEEDS`` cases of helpers/marketgen.py (``market_case(seed)``, version 2: no levels, no
status records) are recorded here as a count and a SHA-256 per seed, ``seq`` included,
and tests/streams/test_halt_properties.py recomputes them with today's engine.

To record them again (only ever from the version 2 engine, installed with its
top-level packages into a virtualenv of its own)::

    git worktree add /tmp/v2 5b213b7 && python -m venv /tmp/v2env
    /tmp/v2env/bin/pip install -c constraints.txt /tmp/v2
    (cd /tmp && /tmp/v2env/bin/python /work/main/tests/helpers/v2_digests.py) \\
        > tests/helpers/v2_digests.json
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from helpers.v1_digests import sha256_of

SEEDS = range(40)
DIGESTS = Path(__file__).with_name("v2_digests.json")


def digest(outputs: Iterable[tuple[str, str | None, dict[str, Any]]]) -> tuple[int, str]:
    """(count, SHA-256) of outputs in order, every field but the windows' rounded stats."""
    return sha256_of(outputs)


def digests(engine_of: Callable[[dict[str, Any]], Any]) -> dict[str, list[Any]]:
    """``{seed: [count, sha256]}`` with engines made by ``engine_of(config dict)``."""
    from helpers.marketgen import market_case  # noqa: PLC0415  (also run as a script)

    out: dict[str, list[Any]] = {}
    for seed in SEEDS:
        config, _, lines = market_case(seed)
        engine = engine_of(config)
        outputs = []
        for i, line in enumerate(lines, 1):
            outputs += engine.process(line, i)
        out[str(seed)] = list(digest(outputs))
    return out


if __name__ == "__main__":  # the version 2 engine's top-level packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # (tests/)
    from arbstream.config import parse_config  # the version 2 engine's
    from streams.engine import Engine  # (version 2 had top-level packages)

    result = digests(lambda data: Engine(parse_config(data)))
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
