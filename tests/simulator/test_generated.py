"""The generated demo scenario: well-formed records, and every signal fires through the engine."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from arbstream.config import Config, load_config, parse_config
from arbstream.simulator.generated import GeneratorSettings, generate_ticks
from arbstream.streams.engine import Engine
from helpers.paths import SCENARIOS

START = 1_769_990_400_000
MINUTE = 60_000
SEEDS = (1, 7, 2026)


@pytest.fixture(scope="module")
def dislocation() -> Config:
    return load_config(SCENARIOS / "dislocation-2026-01-30" / "config.toml")


@pytest.fixture(scope="module")
def every_kind() -> Config:
    """One venue of each kind the generator models, in five currencies and four units."""
    return parse_config(
        {
            "venues": {
                "COMEX": {"currency": "USD", "unit": "oz"},
                "LBMA": {"currency": "USD", "unit": "oz"},
                "SLV": {"currency": "USD", "unit": 0.8636},
                "SHFE": {"currency": "CNY", "unit": "kg", "vat": 0.13},
                "SHUIBEI": {"currency": "CNY", "unit": "g"},
                "MCX": {"currency": "INR", "unit": "kg"},
                "EUREX": {"currency": "EUR", "unit": "oz"},
                "ODD": {"currency": "XYZ", "unit": "g", "units": {"XAG": "kg"}},
            }
        }
    )


def _until(records: Iterator[dict[str, Any]], end_ts: int) -> list[dict[str, Any]]:
    return list(itertools.takewhile(lambda r: r["ts"] < end_ts, records))


def test_same_inputs_give_the_same_records(dislocation: Config) -> None:
    first = list(itertools.islice(generate_ticks(dislocation, 42, START), 5000))
    again = list(itertools.islice(generate_ticks(dislocation, 42, START), 5000))
    other = list(itertools.islice(generate_ticks(dislocation, 43, START), 5000))
    assert first == again
    assert first != other


def test_record_shapes_order_and_prices(every_kind: Config) -> None:
    records = _until(generate_ticks(every_kind, 5, START), START + 10 * MINUTE)
    tss = [r["ts"] for r in records]
    assert tss[0] >= START
    assert all(a <= b for a, b in itertools.pairwise(tss))
    quote_keys = {"type", "venue", "instrument", "bid", "ask", "ts"}
    fx_keys = {"type", "pair", "bid", "ask", "ts"}
    for r in records:
        assert set(r) == (quote_keys if r["type"] == "quote" else fx_keys)
        assert type(r["ts"]) is int
        for side in ("bid", "ask"):
            assert type(r[side]) is float and math.isfinite(r[side]) and r[side] > 0
        assert r["bid"] < r["ask"]  # never crossed, nor locked
    quotes = [r for r in records if r["type"] == "quote"]
    assert {q["instrument"] for q in quotes} == {"XAG"}
    # Rounded to the venue's tick: $0.005/oz, 1 per kg, 0.01 per g or ETF share.
    for q in quotes:
        tick = {"COMEX": 0.005, "LBMA": 0.005, "EUREX": 0.005, "SHFE": 1, "MCX": 1}.get(
            q["venue"], 0.01
        )
        if q["venue"] == "ODD":
            tick = 1  # its XAG unit is overridden to kg
        for side in ("bid", "ask"):
            assert abs(q[side] / tick - round(q[side] / tick)) < 1e-6, q


def test_every_venue_quotes_early_and_fx_comes_first(every_kind: Config) -> None:
    records = _until(generate_ticks(every_kind, 11, START), START + 10 * MINUTE)
    first_quote: dict[str, int] = {}
    first_fx: dict[str, int] = {}
    for i, r in enumerate(records):
        if r["type"] == "quote":
            first_quote.setdefault(r["venue"], i)
        else:
            first_fx.setdefault(r["pair"], i)
    assert set(first_quote) == set(every_kind.venue_names)
    assert set(first_fx) == {"USDCNY", "USDINR", "USDEUR", "USDXYZ"}
    for venue, index in first_quote.items():
        assert records[index]["ts"] < START + 2000, venue
        currency = every_kind.currency[venue]
        if currency != "USD":
            assert first_fx["USD" + currency] < index, venue
    # An fx record per pair every fx_every_ms, drifting slowly near its usual level.
    cny = [(r["bid"] + r["ask"]) / 2 for r in records if r.get("pair") == "USDCNY"]
    assert len(cny) == 10 * MINUTE // GeneratorSettings().fx_every_ms
    assert len(set(cny)) > 10 and all(7.0 < m < 7.2 for m in cny)
    inr = [r["ask"] - r["bid"] for r in records if r.get("pair") == "USDINR"]
    assert all(0 < width < 0.05 for width in inr)


def test_prices_normalise_to_the_model(every_kind: Config) -> None:
    """Local prices are the inverse of the normalisation (docs/evaluation.md): every venue
    is near the reference."""
    fx = {"USD": 1.0}
    for r in _until(generate_ticks(every_kind, 3, START), START + 5 * MINUTE):
        if r["type"] == "fx":
            fx[r["pair"][3:]] = (r["bid"] + r["ask"]) / 2
            continue
        venue = every_kind.venues[r["venue"]]
        factor = (1 + venue.vat) * fx[venue.currency] * every_kind.oz_per_unit(r["venue"], "XAG")
        usd_mid = (r["bid"] + r["ask"]) / 2 / factor
        # The reference starts at 78 and moves ~2% in 5 minutes; Shanghai premiums go to +30%.
        assert 60 < usd_mid < 115, r


@pytest.mark.parametrize("seed", SEEDS)
def test_the_engine_sees_spreads_arbs_and_wide_markets(dislocation: Config, seed: int) -> None:
    engine = Engine(dislocation)
    counts: Counter[str] = Counter()
    records = _until(generate_ticks(dislocation, seed, START), START + 20 * MINUTE)
    for line, record in enumerate(records, start=1):
        for stream, _key, out in engine.process(orjson.dumps(record), line):
            if stream == "signals":
                counts[f"{out['kind']}.{out['event']}"] += 1
            else:
                counts[stream] += 1
    assert counts["dlq"] == 0, counts
    assert counts["spreads"] > 1000, counts
    for event in ("arb.open", "arb.close", "wide.open", "wide.close"):
        assert counts[event] >= 1, (event, counts)


@pytest.mark.parametrize(
    "change",
    [
        {"tick_ms": 0},
        {"fx_every_ms": -1},
        {"regime_mean_ms": 0},
        {"start_usd": 0.0},
        {"start_usd": math.nan},
        {"vol_bps_per_s": -1.0},
        {"premium_levels": ()},
        {"premium_levels": (0.0, -1.0)},
        {"board_wide_bps": (0.0, 100.0)},
        {"board_narrow_bps": (300.0, 200.0)},
        {"london_premium_usd": (1.0, 0.5)},
        {"instrument": ""},
    ],
)
def test_bad_settings_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        GeneratorSettings(**change)


def test_negative_start_is_refused(dislocation: Config) -> None:
    with pytest.raises(ValueError):
        generate_ticks(dislocation, 1, -1)
