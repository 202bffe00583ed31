"""Properties of the engine over generated streams (hypothesis picks the seeds)."""

from __future__ import annotations

import dataclasses
import math
import random
import re
import statistics
import tomllib
from collections import defaultdict
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbstream.config import Config, load_config, parse_config
from arbstream.streams.changelog import CHUNK
from arbstream.streams.engine import Engine, Output
from arbstream.streams.errors import StateError
from helpers.paths import SCENARIO_NAMES, SCENARIOS
from helpers.streamgen import VenueSpec, config_toml, random_stream, random_venues

# (tens of generated streams: half a minute; the quick tier leaves them to `make test`)
pytestmark = pytest.mark.slow

seeds = st.integers(0, 2**32 - 1)
PROPERTY = settings(max_examples=25, deadline=None)


def make_case(
    seed: int, n: int = 1500, routes: bool = True
) -> tuple[Config, list[VenueSpec], list[bytes]]:
    rng = random.Random(seed)
    venues = random_venues(rng, rng.randint(2, 6))
    route_list = None
    if routes and rng.random() < 0.7:
        names = [v.name for v in venues]
        pairs = [(b, s) for b in names for s in names if b != s]
        route_list = [
            (b, s, rng.choice([0, 0.25, 1.5]), rng.choice([0, 10, 25]))
            for b, s in rng.sample(pairs, min(4, len(pairs)))
        ]
    toml = config_toml(
        venues,
        route_list,
        persist_ms=rng.choice([0, 500, 3000]),
        update_usd=rng.choice([0.05, 0.5]),
    )
    config = parse_config(tomllib.loads(toml))
    instruments = ("XAG", "XAU") if rng.random() < 0.3 else ("XAG",)
    return config, venues, random_stream(rng, venues, n, instruments)


def run(engine: Engine, lines: list[bytes], start: int = 1) -> list[Output]:
    out: list[Output] = []
    for i, line in enumerate(lines, start=start):
        out += engine.process(line, i)
    return out


def dumps(outputs: list[Output]) -> list[bytes]:
    return [orjson.dumps(o) for o in outputs]


@PROPERTY
@given(seeds, st.lists(st.integers(1, 1499), max_size=6))
def test_output_does_not_depend_on_batching_or_restore(seed: int, cuts: list[int]) -> None:
    """Splitting the input into batches, with the state carried across each split into a
    fresh engine, gives exactly the uninterrupted output: carried as a full snapshot, and
    carried as the changelog a worker keeps (every ``changes()``, latest value per key,
    deletions applied)."""
    config, _, lines = make_case(seed)
    whole = dumps(run(Engine(config), lines))
    for carry in ("snapshot", "changelog"):
        assert run_restored(config, lines, cuts, carry) == whole, carry


def run_restored(config: Config, lines: list[bytes], cuts: list[int], carry: str) -> list[bytes]:
    """The encoded output of ``lines`` cut at ``cuts``, each piece run by a fresh engine
    loaded with the state the one before it left: its ``snapshot()``, or (``carry`` is
    "changelog") every ``changes()`` so far, latest value per key."""
    pieces: list[bytes] = []
    engine = Engine(config)
    table: dict[str, bytes] = {}
    prev = 0
    for cut in [*sorted(set(cuts)), len(lines)]:
        pieces += dumps(run(engine, lines[prev:cut], start=prev + 1))
        apply_changes(table, engine.changes())
        state = dict(engine.snapshot()) if carry == "snapshot" else dict(table)
        engine = Engine(config)
        engine.load(state)
        prev = cut
    return pieces


def apply_changes(table: dict[str, bytes], changes: list[tuple[str, bytes | None]]) -> None:
    for key, value in changes:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value


EXTREME = parse_config(
    {
        "defaults": {"windows_ms": [50, 400], "spread_emit_ms": 0, "stale_ms": 1000},
        "arb": {"persist_ms": 0},
        "venues": {
            "A": {"currency": "USD", "unit": "oz"},
            "B": {"currency": "USD", "unit": "oz"},
            "C": {"currency": "CNY", "unit": "kg", "vat": 0.13},
        },
        "routes": [{"buy": "A", "sell": "B"}, {"buy": "B", "sell": "C"}],
    }
)


@PROPERTY
@given(seeds, st.lists(st.integers(1, 599), min_size=1, max_size=5))
def test_state_with_infinities_and_nan_restores_exactly(seed: int, cuts: list[int]) -> None:
    """Valid prices near the largest double make infinite mids and NaN spreads, and
    squares that overflow in a window's sums (JSON has neither; orjson writes null):
    carried across restores, the state still gives the uninterrupted output."""
    rng = random.Random(seed)
    prices = [80.0, 81.5, 1e200, 1.5e308, 1.7e308]
    lines = []
    for i in range(600):
        if i % 50 == 0:
            rate = rng.choice([7.1, 1e-300])  # a tiny rate overflows a CNY quote's price
            bid = orjson.dumps({"type": "fx", "pair": "USDCNY", "bid": rate, "ask": rate})
            lines.append(bid[:-1] + b',"ts":' + str(i * 10).encode() + b"}")
            continue
        bid = rng.choice(prices)
        quote = {"type": "quote", "venue": rng.choice("ABC"), "instrument": "XAG"}
        quote |= {"bid": bid, "ask": bid * rng.choice([1.0, 1.001]), "ts": i * 10}
        if math.isinf(quote["ask"]):
            quote["ask"] = bid
        lines.append(orjson.dumps(quote))
    whole = dumps(run(Engine(EXTREME), lines))
    assert any(b"null" in out for out in whole)  # the stream reached the overflows
    for carry in ("snapshot", "changelog"):
        assert run_restored(EXTREME, lines, cuts, carry) == whole, carry


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_snapshot_mid_scenario_gives_same_remaining_output(name: str) -> None:
    config = load_config(SCENARIOS / name / "config.toml")
    lines = (SCENARIOS / name / "ticks.jsonl").read_bytes().splitlines()
    mid = len(lines) // 2
    reference = Engine(config)
    run(reference, lines[:mid])
    expected_rest = dumps(run(reference, lines[mid:], start=mid + 1))
    first = Engine(config)
    run(first, lines[:mid])
    resumed = Engine(config)
    resumed.load(first.snapshot())
    assert dumps(run(resumed, lines[mid:], start=mid + 1)) == expected_rest
    assert len(expected_rest) > 100


def test_changelog_stays_bounded_by_window_contents() -> None:
    """A long stream through short windows: the live changelog (after deletions) holds
    only the chunks the windows still need, and restoring it continues exactly."""
    text = """
[defaults]
windows_ms = [1000]
[venues.A]
currency = "USD"
unit = "oz"
[venues.B]
currency = "USD"
unit = "oz"
"""
    config = parse_config(tomllib.loads(text), "inline")
    lines = [
        orjson.dumps(
            {
                "type": "quote",
                "venue": "AB"[i % 2],
                "instrument": "XAG",
                "bid": 70.0 + (i % 7) * 0.01,
                "ask": 70.1 + (i % 5) * 0.01,
                "ts": i,
            }
        )
        for i in range(50_000)
    ]
    engine, table = Engine(config), {}
    for begin in range(0, 40_000, 997):
        run(engine, lines[begin : begin + 997], start=begin + 1)
        apply_changes(table, engine.changes())
    chunks = [k for k in table if k.startswith("w/")]
    # The buffer keeps at most about twice the window (1000 samples) before it drops its prefix.
    assert 1000 // CHUNK <= len(chunks) <= 2 * 1000 // CHUNK + 3
    resumed = Engine(config)
    resumed.load(table)
    assert dumps(run(resumed, lines[40_000:], start=40_001)) == dumps(
        run(engine, lines[40_000:], start=40_001)
    )


@PROPERTY
@given(seeds)
def test_quoting_in_grams_instead_of_kilograms_changes_no_normalised_value(seed: int) -> None:
    rng = random.Random(seed)
    venues = random_venues(rng, rng.randint(2, 5))
    venues[0] = dataclasses.replace(venues[0], unit="kg")
    lines = random_stream(rng, venues, 1200)
    kg = parse_config(tomllib.loads(config_toml(venues, None)))
    in_g = [dataclasses.replace(venues[0], unit="g"), *venues[1:]]
    g = parse_config(tomllib.loads(config_toml(in_g, None)))
    scaled = []
    for line in lines:
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            scaled.append(line)
            continue
        if (
            isinstance(rec, dict)
            and rec.get("type") == "quote"
            and rec.get("venue") == venues[0].name
        ):
            for side in ("bid", "ask"):
                if isinstance(rec.get(side), float):
                    rec[side] /= 1000
        scaled.append(orjson.dumps(rec))
    a, b = run(Engine(kg), lines), run(Engine(g), scaled)
    assert [(s, k) for s, k, _ in a] == [(s, k) for s, k, _ in b]
    for (_, _, ra), (_, _, rb) in zip(a, b, strict=True):
        assert close_except(ra, rb, skip={"raw", "bid", "ask"}), (ra, rb)


def close_except(a: Any, b: Any, skip: set[str]) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(
            close_except(a[k], b[k], skip) for k in a if k not in skip
        )
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


LIFECYCLE = re.compile(r"(ou*c)*(ou*)?")


@PROPERTY
@given(seeds)
def test_signal_lifecycles_are_well_formed(seed: int) -> None:
    config, _, lines = make_case(seed, n=2500)
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    clock: dict[str, int] = {}
    for stream, key, rec in run(Engine(config), lines):
        if stream == "dlq":
            continue
        assert rec["ts"] >= clock.get(rec["instrument"], 0)  # the clock never goes back
        clock[rec["instrument"]] = rec["ts"]
        if stream == "signals":
            assert key is not None
            events[key].append(rec)
    for key, recs in events.items():
        word = "".join(r["event"][0] for r in recs)
        assert LIFECYCLE.fullmatch(word), (key, word)
        opened = None
        for r in recs:
            if r["kind"] != "arb":
                continue
            if r["event"] == "open":
                opened = r["opened_ts"]
                assert r["peak_net"] == r["net"] >= config.arb.open_usd
            else:
                assert r["opened_ts"] == opened
            if r["event"] == "close":
                assert r["duration_ms"] == r["ts"] - opened
                assert (r["reason"] == "stale") or r["net"] < config.arb.close_usd


@PROPERTY
@given(seeds)
def test_no_open_or_spread_without_fresh_legs(seed: int) -> None:
    config, _, lines = make_case(seed, n=2500)
    engine = Engine(config)
    quote_ts: dict[tuple[str, str], int] = {}
    fx_ts: dict[str, int] = {}

    def fresh(instrument: str, venue: str, t: int) -> bool:
        ts = quote_ts.get((instrument, venue))
        if ts is None or t - ts > config.stale_ms[venue]:
            return False
        cur = config.currency[venue]
        return cur == "USD" or t - fx_ts.get("USD" + cur, -(10**18)) <= config.fx_stale_ms

    opens = 0
    for i, line in enumerate(lines, start=1):
        out = engine.process(line, i)
        if not any(s == "dlq" for s, _, _ in out):
            rec = orjson.loads(line)
            if rec["type"] == "quote":
                quote_ts[(rec["instrument"], rec["venue"])] = rec["ts"]
            else:
                fx_ts[rec["pair"]] = rec["ts"]
        for stream, _, r in out:
            if stream == "spreads":
                assert fresh(r["instrument"], r["a"], r["ts"]) and fresh(
                    r["instrument"], r["b"], r["ts"]
                )
            if stream == "signals" and r["kind"] == "arb" and r["event"] != "close":
                opens += 1
                assert fresh(r["instrument"], r["buy"], r["ts"]) and fresh(
                    r["instrument"], r["sell"], r["ts"]
                )


@pytest.mark.slow  # a minute: every window recomputed from its samples, every tick
@PROPERTY
@given(seeds)
def test_spread_window_stats_equal_recomputation_from_samples(seed: int) -> None:
    config, _, lines = make_case(seed, n=2000)
    assert config.spread_emit_ms == 0  # every sample is emitted, so records hold them all
    history: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for stream, key, r in run(Engine(config), lines):
        if stream != "spreads":
            continue
        assert key is not None
        assert r["spread"] == pytest.approx(r["a_mid"] - r["b_mid"], abs=1e-12)
        assert r["spread_bps"] == pytest.approx(r["spread"] / r["b_mid"] * 1e4)
        history[key].append((r["ts"], r["spread"]))
        for w, stats in r["windows"].items():
            xs = [x for ts, x in history[key] if r["ts"] - int(w) < ts]
            assert stats["n"] == len(xs)
            assert stats["mean"] == pytest.approx(statistics.fmean(xs), rel=1e-12, abs=1e-12)
            assert stats["std"] == pytest.approx(statistics.pstdev(xs), abs=1e-9)
            assert (stats["min"], stats["max"]) == (min(xs), max(xs))
            if stats["z"] is not None:
                assert stats["z"] == pytest.approx((r["spread"] - stats["mean"]) / stats["std"])


def test_load_refuses_state_of_another_config_or_a_malformed_one() -> None:
    config = load_config(SCENARIOS / "random-101" / "config.toml")
    other = load_config(SCENARIOS / "dislocation-2026-01-30" / "config.toml")
    engine = Engine(config)
    run(engine, (SCENARIOS / "random-101" / "ticks.jsonl").read_bytes().splitlines()[:200])
    snapshot = engine.snapshot()
    with pytest.raises(StateError, match="different config"):
        Engine(other).load(snapshot)
    instrument = next(k for k in snapshot if k.startswith("i/"))
    with pytest.raises(StateError, match="malformed"):
        Engine(config).load({**snapshot, instrument: b'{"clock": 1}'})
    chunk = next(k for k in snapshot if k.startswith("w/"))
    with pytest.raises(StateError, match="missing or malformed"):
        Engine(config).load({k: v for k, v in snapshot.items() if k != chunk})
