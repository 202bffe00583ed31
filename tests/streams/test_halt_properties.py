"""Properties of halts and price levels (docs/evaluation.md; version 3) over generated
multi-day markets with venues halting and resuming and levels near the price: no halted
venue is a leg of anything, `halted` closes exactly when a leg is halted, level crosses
alternate out of their band, the state carries both across a restore, and version 2
configs and inputs compute exactly what version 2 computed."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbstream.config import parse_config
from arbstream.streams.batch import replay_lines
from arbstream.streams.engine import Engine, Output
from helpers.marketgen import market_case
from helpers.v2_digests import DIGESTS, SEEDS, digests

# (generated multi-day markets: half a minute; the quick tier leaves them to `make test`)
pytestmark = pytest.mark.slow

seeds = st.integers(0, 2**32 - 1)
PROPERTY = settings(max_examples=15, deadline=None)


class Tracked:
    """The outputs of a v3 case, with the halted venues as the halt signals say, at each
    record."""

    def __init__(self, seed: int, n: int = 4000) -> None:
        self.config, _, self.lines = market_case(seed, n, v3=True)
        self.engine = Engine(parse_config(self.config))

    def run(self) -> list[tuple[set[str], Output]]:
        """Each output with the set of venues halted when it was emitted."""
        halted: set[str] = set()
        out = []
        for i, line in enumerate(self.lines, 1):
            for output in self.engine.process(line, i):
                record = output[2]
                if record.get("kind") == "halt":
                    (halted.add if record["event"] == "open" else halted.discard)(record["venue"])
                out.append((set(halted), output))
        return out


@PROPERTY
@given(seeds)
def test_no_spread_basis_record_or_eligible_route_involves_a_halted_venue(seed: int) -> None:
    for halted, (stream, _, r) in Tracked(seed).run():
        if stream == "spreads":
            legs = {r["a"], r["b"]}
        elif stream == "basis":
            legs = {r["spot"], r["future"]}
        elif r.get("kind") == "arb" and r["event"] in ("open", "update"):
            legs = {r["buy"], r["sell"]}
        elif r.get("kind") == "basis" and r["event"] == "open":
            legs = {r["spot"], r["future"]}
        else:
            continue
        assert not legs & halted, (r, halted)


@PROPERTY
@given(seeds)
def test_a_close_is_halted_exactly_when_a_leg_is_halted(seed: int) -> None:
    for halted, (_, _, r) in Tracked(seed).run():
        if r.get("type") != "signal" or r["event"] != "close" or r["kind"] not in ("arb", "basis"):
            continue
        legs = {r["buy"], r["sell"]} if r["kind"] == "arb" else {r["spot"], r["future"]}
        if r["reason"] == "expired":
            continue  # (the one row taken before eligibility: a leg may be halted, or not)
        assert (r["reason"] == "halted") == bool(legs & halted), (r, halted)


@PROPERTY
@given(seeds)
def test_level_crosses_alternate_and_leave_the_band(seed: int) -> None:
    tracked = Tracked(seed)
    levels = {lv["name"]: lv for lv in tracked.config["levels"]}
    last: dict[str, str] = {}
    for _, (_, key, r) in tracked.run():
        if r.get("kind") != "level":
            continue
        level = levels[r["name"]]
        assert key == f"XAG|level|{r['name']}" and r["venue"] == level["venue"]
        assert r["price"] == level["price"]
        if r["direction"] == "up":
            assert r["mid"] >= level["price"] + level["band_usd"], r
        else:
            assert r["mid"] < level["price"] - level["band_usd"], r
        assert last.get(r["name"]) != r["direction"], r  # up, down, up, ...
        last[r["name"]] = r["direction"]


def test_generated_v3_cases_halt_and_cross() -> None:
    """The generator exercises what the properties are about."""
    kinds: dict[tuple[str, str], int] = {}
    for seed in range(8):
        for _, (_, _, r) in Tracked(seed).run():
            if r.get("type") == "signal":
                key = (r["kind"], str(r.get("reason") or r.get("direction") or r["event"]))
                kinds[key] = kinds.get(key, 0) + 1
    for expected in [("halt", "open"), ("halt", "close"), ("arb", "halted"),
                     ("level", "up"), ("level", "down")]:  # fmt: skip
        assert kinds.get(expected, 0) > 0, (expected, kinds)


@PROPERTY
@given(seeds, st.integers(1, 3999), st.integers(1, 97))
def test_v3_output_does_not_depend_on_restore_or_batching(seed: int, cut: int, chunk: int) -> None:
    tracked = Tracked(seed)
    lines, config = tracked.lines, parse_config(tracked.config)
    whole = [output for _, output in tracked.run()]
    first = Engine(config)
    before = [o for i, line in enumerate(lines[:cut], 1) for o in first.process(line, i)]
    resumed = Engine(config)
    resumed.load(first.snapshot())
    after = [o for i, line in enumerate(lines[cut:], cut + 1) for o in resumed.process(line, i)]
    assert orjson.dumps(before + after) == orjson.dumps(whole)
    batched = Engine(config)
    encoded: list[bytes] = []
    for start in range(0, len(lines), chunk):
        replay_lines(batched, lines[start : start + chunk], start, encoded)
    assert encoded == [orjson.dumps(r) for s, _, r in whole]


def test_version_2_cases_give_exactly_the_version_2_output() -> None:
    """Version 3 leaves version 2 alone: the recorded digests of the engine before it
    (helpers/v2_digests.py says how) equal today's, seq included."""
    recorded: dict[str, Any] = orjson.loads(DIGESTS.read_bytes())
    assert set(recorded) == {str(s) for s in SEEDS}
    assert digests(lambda data: Engine(parse_config(data))) == recorded
