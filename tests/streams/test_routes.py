"""The engine evaluates only the routes a record can change (streams/routes.py): the
outputs are exactly those of evaluating every route on every record.

The reference is the engine walking every route (``route_index_from`` above the number
of routes); the engine under test indexes them whatever their number (0). The markets are
the generated multi-day ones with sessions, holidays, FX, staleness, halts and levels
(tests/helpers/marketgen.py), with a route for every ordered pair of venues, so that one
venue's routes are fewer than half of them, and with a
third of the quotes moving only their bid and a third only their ask (a route reads its
buy leg's ask and its sell leg's bid).
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from arbstream.config import parse_config
from arbstream.streams.engine import Engine
from helpers.marketgen import market_case

SEEDS = range(12)


def _case(seed: int) -> tuple[dict[str, Any], list[bytes]]:
    config, venues, lines = market_case(seed, 2500, v3=seed % 2 == 0)
    names = [v.name for v in venues]
    config["routes"] = [
        {"buy": b, "sell": s, "cost_usd": 0.05, "cost_bps": 1}
        for b in names
        for s in names
        if b != s
    ]
    config["arb"]["open_usd"] = 0.25  # (routes open and close often in these markets)
    config["arb"]["close_usd"] = 0.1
    return config, one_sided(lines, random.Random(seed))


def one_sided(lines: list[bytes], rng: random.Random) -> list[bytes]:
    """``lines`` with a third of the quotes keeping their venue's previous ask, and a
    third its previous bid (where the book stays uncrossed)."""
    last: dict[tuple[str, str], tuple[float, float]] = {}
    out = []
    for line in lines:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            out.append(line)  # (the generator's garbage, kept)
            continue
        if not isinstance(record, dict) or record.get("type") != "quote":
            out.append(line)
            continue
        key = (str(record.get("venue")), str(record.get("instrument")))
        before, side = last.get(key), rng.randrange(3)
        bid, ask = record.get("bid"), record.get("ask")
        if before is not None and isinstance(bid, float) and isinstance(ask, float):
            if side == 1 and before[1] > bid:
                record["ask"] = ask = before[1]
            elif side == 2 and before[0] < ask:
                record["bid"] = bid = before[0]
        if isinstance(bid, float) and isinstance(ask, float):
            last[key] = (bid, ask)
        out.append(orjson.dumps(record))
    return out


def _outputs(config: dict[str, Any], lines: list[bytes], index_from: int) -> list[bytes]:
    engine = Engine(parse_config(config), route_index_from=index_from)
    out = []
    for i, line in enumerate(lines, 1):
        out += [orjson.dumps(o) for o in engine.process(line, i)]
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_only_the_routes_a_record_can_change_and_the_same_outputs(seed: int) -> None:
    config, lines = _case(seed)
    indexed = _outputs(config, lines, 0)
    assert indexed == _outputs(config, lines, 10**6)


def test_the_cases_open_and_close_routes_and_park_most_of_them() -> None:
    """The comparison above means something: routes open, update and close, for every
    close reason, and most routes are parked most of the time."""
    events: set[tuple[str, str | None]] = set()
    parked = evaluations = 0
    for seed in SEEDS:
        config, lines = _case(seed)
        engine = Engine(parse_config(config), route_index_from=0)
        n = len(config["routes"])
        for i, line in enumerate(lines, 1):
            for _, _, record in engine.process(line, i):
                if record.get("kind") == "arb":
                    events.add((record["event"], record.get("reason")))
            for state in engine.instruments.values():
                if state.route_live:
                    evaluations += 1
                    parked += n - len(state.live_routes)
    assert {("open", None), ("update", None), ("close", "converged")} <= events, events
    assert {("close", "stale"), ("close", "closed")} <= events, events
    assert parked > evaluations * 0.5 * 12, (parked, evaluations)  # (at least 12 routes)


def test_routes_are_indexed_from_index_from() -> None:
    config, lines = _case(1)
    n = len(config["routes"])
    for index_from, indexed in ((n, True), (n + 1, False)):
        engine = Engine(parse_config(config), route_index_from=index_from)
        for i, line in enumerate(lines[:200], 1):
            engine.process(line, i)
        states = list(engine.instruments.values())
        assert states and all(bool(s.route_live) == indexed for s in states), index_from
