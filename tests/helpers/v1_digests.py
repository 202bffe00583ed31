"""Digests of what the version 1 engine computed on generated streams: the oracle of the
"version 1 configs give the same records as before version 2" property (exact, but for
the last bits of the windows' mean, std and z: ``ROUNDED_STATS``).

Version 2 (market structure) must leave version 1 configs and inputs alone, apart from
the two size fields it adds to arbitrage signals. The engine before version 2 is commit
084e2314 of this repository; its outputs on ``SEEDS`` generated cases (helpers/streamgen.py,
the same generators the property tests use) are recorded here as a count and a SHA-256
per seed, and tests/streams/test_market_properties.py recomputes them with today's engine.

To record them again (only ever from the version 1 engine)::

    git worktree add /tmp/v1 084e2314
    python tests/helpers/v1_digests.py /tmp/v1 > tests/helpers/v1_digests.json
"""

from __future__ import annotations

import hashlib
import random
import sys
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from helpers.streamgen import config_toml, random_stream, random_venues

SEEDS = range(1, 41)
#: Where the recorded digests are.
DIGESTS = Path(__file__).with_name("v1_digests.json")
#: Fields version 2 added to version 1 records (arbitrage signals).
SIZE_FIELDS = ("size_oz", "edge_usd")
#: A window's statistics whose last bits depend on when its running sums are rebuilt
#: (streams/windows.py), which speed work may change: left out of the digests, and held
#: to recomputation from the samples by test_spread_window_stats_equal_recomputation...
#: (tests/streams/test_engine_properties.py) and to the scenarios' tolerance instead.
ROUNDED_STATS = ("mean", "std", "z")


def v1_case(seed: int) -> tuple[str, list[bytes]]:
    """A version 1 config (TOML) and input stream for ``seed``. Not the property tests'
    make_case, though alike: the recorded digests hold only while this generator (and
    the streamgen functions it calls, with their defaults) stays exactly as it is."""
    rng = random.Random(seed)
    venues = random_venues(rng, rng.randint(2, 6))
    names = [v.name for v in venues]
    pairs = [(b, s) for b in names for s in names if b != s]
    routes = [
        (b, s, rng.choice([0, 0.25, 1.5]), rng.choice([0, 10, 25]))
        for b, s in rng.sample(pairs, min(4, len(pairs)))
    ]
    toml = config_toml(
        venues,
        routes,
        persist_ms=rng.choice([0, 500, 3000]),
        update_usd=rng.choice([0.05, 0.5]),
        spread_emit_ms=rng.choice([0, 1000]),
    )
    instruments = ("XAG", "XAU") if rng.random() < 0.3 else ("XAG",)
    return toml, random_stream(rng, venues, 2500, instruments)


def digest(outputs: Iterable[tuple[str, str | None, dict[str, Any]]]) -> tuple[int, str]:
    """(count, SHA-256) of outputs in order, the size fields and ``seq`` left out (the
    version 1 engine had neither; seq is checked on its own, tests/streams)."""
    return sha256_of(outputs, (*SIZE_FIELDS, "seq"))


def sha256_of(
    outputs: Iterable[tuple[str, str | None, dict[str, Any]]], left_out: tuple[str, ...] = ()
) -> tuple[int, str]:
    """(count, SHA-256) of outputs in order: every field but ``left_out`` and the windows'
    ``ROUNDED_STATS``."""
    h = hashlib.sha256()
    n = 0
    for stream, key, record in outputs:
        fields = {k: v for k, v in record.items() if k not in left_out}
        if stream == "spreads":
            fields["windows"] = {
                name: {k: v for k, v in stats.items() if k not in ROUNDED_STATS}
                for name, stats in record["windows"].items()
            }
        h.update(orjson.dumps([stream, key, fields], option=orjson.OPT_SORT_KEYS) + b"\n")
        n += 1
    return n, h.hexdigest()


def digests(engine_of: Callable[[dict[str, Any]], Any]) -> dict[str, list[Any]]:
    """``{seed: [count, sha256]}`` with engines made by ``engine_of(toml dict)``."""
    out: dict[str, list[Any]] = {}
    for seed in SEEDS:
        toml, lines = v1_case(seed)
        engine = engine_of(tomllib.loads(toml))
        outputs = []
        for i, line in enumerate(lines, 1):
            outputs += engine.process(line, i)
        out[str(seed)] = list(digest(outputs))
    return out


if __name__ == "__main__":  # python tests/helpers/v1_digests.py ROOT_OF_THE_V1_ENGINE
    root = Path(sys.argv[1]).resolve()
    sys.path[:0] = [str(root), str(Path(__file__).resolve().parents[1])]  # (tests/)
    from arbstream.config import parse_config  # the version 1 engine's, from root
    from streams.engine import Engine  # (the version 1 engine was a top-level package)

    assert Path(sys.modules["streams.engine"].__file__ or "").is_relative_to(root)
    result = digests(lambda data: Engine(parse_config(data)))
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
