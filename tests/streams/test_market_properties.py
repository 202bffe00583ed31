"""Properties of market structure (docs/evaluation.md: sessions, basis, delivery, sizes)
over generated streams: closed venues stay out of everything, sizes scale as prices do,
basis does not depend on the future's unit, and version 1 configs compute what they
computed before version 2."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbstream.config import parse_config
from arbstream.streams.engine import Engine, Output
from helpers.marketgen import MarketVenue, market_case, rescaled
from helpers.sessions_reference import DAY_NAMES, reference_open
from helpers.streamgen import OZ_PER
from helpers.v1_digests import DIGESTS, SEEDS, digests

# (generated multi-day markets: twenty seconds; the quick tier leaves them to `make test`)
pytestmark = pytest.mark.slow

seeds = st.integers(0, 2**32 - 1)
PROPERTY = settings(max_examples=20, deadline=None)
WEEKDAYS = list(DAY_NAMES[:5])


def run(config: dict[str, Any], lines: list[bytes]) -> list[Output]:
    engine = Engine(parse_config(config))
    out: list[Output] = []
    for i, line in enumerate(lines, 1):
        out += engine.process(line, i)
    return out


def is_open(venue: MarketVenue, t: int) -> bool:
    """The session rule read directly (tests/helpers/sessions_reference.py), not the engine's."""
    if venue.session is None:
        return True
    tz, sessions, days = venue.session
    return reference_open(tz, sessions, days or WEEKDAYS, list(venue.holidays), t)


@PROPERTY
@given(seeds)
def test_no_spread_route_or_basis_involves_a_closed_venue(seed: int) -> None:
    config, venues, lines = market_case(seed)
    by_name = {v.name: v for v in venues}

    def all_open(t: int, *legs: str) -> bool:
        return all(is_open(by_name[v], t) for v in legs)

    for stream, _, r in run(config, lines):
        t = r.get("ts", 0)
        if stream == "spreads":
            assert all_open(t, r["a"], r["b"]), r
        elif stream == "basis":
            assert all_open(t, r["spot"], r["future"]), r
        elif stream == "signals" and r["kind"] in ("arb", "basis"):
            legs = (r["buy"], r["sell"]) if r["kind"] == "arb" else (r["spot"], r["future"])
            if r["event"] != "close":
                assert all_open(t, *legs), r  # an eligible route or pair
            elif r["reason"] in ("closed", "stale"):
                # closed exactly when a leg is outside its sessions at the close
                assert (r["reason"] == "closed") == (not all_open(t, *legs)), r


def close(a: Any, b: Any, skip: frozenset[str] = frozenset()) -> bool:
    """Equal, numbers within 1e-9 (relative or absolute), ``skip`` keys not compared."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], skip) for k in a if k not in skip)
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def assert_same_records(a: list[Output], b: list[Output]) -> None:
    """The same records in the same order, input prices and sizes aside (``raw`` in the
    dlq and a wide signal's venue-unit ``bid``/``ask`` carry the venue's own units)."""
    assert [(s, k) for s, k, _ in a] == [(s, k) for s, k, _ in b]
    skip = frozenset({"raw", "bid", "ask"})
    for (_, _, ra), (_, _, rb) in zip(a, b, strict=True):
        assert close(ra, rb, skip), (ra, rb)


def _with(config: dict[str, Any], venue: str, **changes: Any) -> dict[str, Any]:
    venues = {**config["venues"], venue: {**config["venues"][venue], **changes}}
    return {**config, "venues": venues}


def _sized(outputs: list[Output]) -> int:
    return sum(1 for s, _, r in outputs if s == "signals" and r.get("size_oz") is not None)


@PROPERTY
@given(seeds)
def test_sizes_scale_with_unit_and_lot_exactly_as_prices_do(seed: int) -> None:
    """A venue quoted in kg with sizes in kg (lot 1); the same venue quoted in g with
    sizes in g; and in kg with lots of 5 kg (sizes in lots): every record, ``size_oz``
    and ``edge_usd`` included, is the same."""
    config, venues, lines = market_case(seed)
    v = venues[0]
    in_kg = rescaled(lines, v.name, OZ_PER["kg"] / OZ_PER[v.unit], 1.0)
    kg = run(_with(config, v.name, unit="kg", lot=1.0), in_kg)
    in_g = rescaled(in_kg, v.name, 1 / 1000, 1000.0)
    assert_same_records(kg, run(_with(config, v.name, unit="g", lot=1.0), in_g))
    in_lots = rescaled(in_kg, v.name, 1.0, 1 / 5)
    assert_same_records(kg, run(_with(config, v.name, unit="kg", lot=5.0), in_lots))


@PROPERTY
@given(seeds)
def test_basis_does_not_depend_on_the_future_s_unit(seed: int) -> None:
    """The future of a basis pair quoted in kg instead of oz (prices x 32.15, a lot in
    kg holding the same ounces): the same basis records and signals, and all else."""
    config, venues, lines = market_case(seed)
    future = next(v for v in venues if v.expiry is not None)
    in_oz = rescaled(lines, future.name, 1 / OZ_PER[future.unit], 1.0)
    oz = run(_with(config, future.name, unit="oz"), in_oz)
    in_kg = rescaled(in_oz, future.name, OZ_PER["kg"], 1.0)
    lot_kg = future.lot / OZ_PER["kg"]
    assert_same_records(oz, run(_with(config, future.name, unit="kg", lot=lot_kg), in_kg))


def test_version_1_configs_compute_what_they_did_before_version_2() -> None:
    """40 generated version 1 cases (126,625 records): today's engine's outputs, the
    size fields left out, have the digests the version 1 engine recorded
    (tests/v1_digests.py says how)."""
    recorded = orjson.loads(DIGESTS.read_bytes())
    assert list(recorded) == [str(s) for s in SEEDS]
    now = digests(lambda data: Engine(parse_config(data)))
    differ = [seed for seed in recorded if recorded[seed] != now[seed]]
    assert not differ, f"seeds whose outputs changed: {differ}"
    assert sum(n for n, _ in recorded.values()) > 100_000


def test_generated_cases_exercise_what_the_properties_are_about() -> None:
    """Across a few seeds the generator gives spreads, closes as closed, basis records
    and signals, sized arbitrage and delivery signals: the properties are not vacuous."""
    counts = dict.fromkeys(("spread", "closed", "basis", "basis signal", "sized", "delivery"), 0)
    for seed in range(12):
        config, _, lines = market_case(seed)
        outputs = run(config, lines)
        counts["sized"] += _sized(outputs)
        for stream, _, r in outputs:
            counts["basis"] += stream == "basis"
            counts["spread"] += stream == "spreads"
            if stream == "signals":
                counts["closed"] += r.get("reason") == "closed"
                counts["delivery"] += r["kind"] == "delivery"
                counts["basis signal"] += r["kind"] == "basis"
    assert all(n > 0 for n in counts.values()), counts
