"""What metrics read from an engine: its counters and a view that never changes it."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest

from arbstream.config import Config, load_config, parse_config
from arbstream.streams.engine import Engine
from arbstream.streams.observe import observe
from helpers.paths import SCENARIO_NAMES, SCENARIOS


def _lines(name: str) -> list[bytes]:
    return (SCENARIOS / name / "ticks.jsonl").read_bytes().splitlines()


def _config(name: str) -> Config:
    return load_config(SCENARIOS / name / "config.toml")


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_counters_match_the_scenario_output(name: str) -> None:
    engine = Engine(_config(name))
    for i, line in enumerate(_lines(name), 1):
        engine.process(line, i)
    expected = [
        orjson.loads(x) for x in (SCENARIOS / name / "expected.jsonl").read_bytes().splitlines()
    ]
    signals = Counter((r["kind"], r["event"]) for r in expected if r["type"] == "signal")
    rejected = Counter(r["reason"] for r in expected if r["type"] == "rejected")
    assert engine.counters.signals == dict(signals)
    assert engine.counters.rejected == dict(rejected)

    rejected_lines = {r["source"]["line"] for r in expected if r["type"] == "rejected"}
    accepted = [orjson.loads(x) for i, x in enumerate(_lines(name), 1) if i not in rejected_lines]
    quotes = Counter((x["venue"], x["instrument"]) for x in accepted if x["type"] == "quote")
    fx = Counter(x["pair"] for x in accepted if x["type"] == "fx")
    assert engine.counters.quotes == dict(quotes)
    assert engine.counters.fx == dict(fx)
    assert sum(quotes.values()) > 100


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_observing_after_every_record_changes_nothing(name: str) -> None:
    """Scrapes happen between batches: the outputs and the state must be those of an
    engine nobody looked at, bit for bit."""
    config = _config(name)
    watched, alone = Engine(config), Engine(config)
    instruments = {"XAG"}
    for i, line in enumerate(_lines(name), 1):
        assert watched.process(line, i) == alone.process(line, i), f"line {i}"
        observe(watched, instruments)
    assert watched.snapshot() == alone.snapshot()


def test_view_agrees_with_the_last_records() -> None:
    name = "dislocation-2026-01-30"
    config = _config(name)
    engine = Engine(config)
    last_spread: dict[str, dict[str, Any]] = {}
    last_arb: dict[str, dict[str, Any]] = {}
    opens_seen = 0
    for i, line in enumerate(_lines(name), 1):
        for stream, _, record in engine.process(line, i):
            if stream == "spreads":
                last_spread[f"{record['a']}|{record['b']}"] = record
            elif record.get("kind") == "arb":
                last_arb[f"{record['buy']}>{record['sell']}"] = record
        view = observe(engine, {"XAG"})
        for route in view.routes:
            arb = last_arb.get(route.route)
            is_open = arb is not None and arb["event"] in ("open", "update")
            assert route.open == is_open, (i, route)
            if route.open:
                assert arb is not None
                opens_seen += 1
                assert route.open_ms == engine.instruments["XAG"].clock - arb["opened_ts"]
                assert route.net is not None
                if arb["ts"] == engine.instruments["XAG"].clock:  # evaluated just now
                    assert route.net == pytest.approx(arb["net"], rel=1e-12)
        for spread in view.spreads:
            record = last_spread[spread.pair]
            assert spread.spread == record["spread"]
            assert spread.spread_bps == record["spread_bps"]
            windows = record["windows"].items()
            assert spread.z == {w: s["z"] for w, s in windows if s["z"] is not None}
    assert opens_seen > 0
    ages = {q.venue: q.behind_ms for q in observe(engine, {"XAG"}).quotes}
    assert set(ages) == set(config.venue_names)
    assert min(ages.values()) == 0  # the venue that set the clock


def test_instruments_outside_the_filter_are_not_viewed() -> None:
    engine = Engine(_config("dislocation-2026-01-30"))
    for i, line in enumerate(_lines("dislocation-2026-01-30")[:200], 1):
        engine.process(line, i)
    assert observe(engine, set()).quotes == []
    assert observe(engine, {"XAG"}).quotes


def test_metric_instruments_come_from_the_config() -> None:
    base: dict[str, Any] = {
        "venues": {
            "A": {"currency": "USD", "unit": "oz"},
            "B": {"currency": "CNY", "unit": "kg", "units": {"AU": "g"}},
        },
        "feeds": {
            "a": {
                "protocol": "binance",
                "url": "wss://x/ws",
                "venue": "A",
                "symbols": {"XAGUSDT": "XAG"},
            },
            "fx": {
                "protocol": "massive",
                "url": "wss://y/ws",
                "symbols": {"USD/CNY": "USDCNY"},
                "api_key_env": "K",
            },
        },
    }
    config = parse_config(base)
    assert config.metric_instruments == {"XAG", "AU"}  # not the fx pair
    assert config.fx_pairs == {"USDCNY"}
    listed = parse_config({**base, "metrics": {"instruments": ["XAG", "XPT"]}})
    assert listed.metric_instruments == {"XAG", "XPT"}
    assert listed.fingerprint() == config.fingerprint()  # metrics do not touch state
    with pytest.raises(Exception, match=r"metrics\.instruments"):
        parse_config({**base, "metrics": {"instruments": ["other"]}})
    with pytest.raises(Exception, match=r"metrics\.instruments"):
        parse_config({**base, "metrics": {"instruments": "XAG"}})


@pytest.mark.parametrize("name", ["cny-holiday-2026-02", "random-202"])
def test_market_view_agrees_with_the_engine_at_every_record(name: str) -> None:
    """Basis figures, route sizes and delivery coverage, as metrics show them, are what
    the engine publishes when it evaluates at the same clock."""
    engine = Engine(_config(name))
    coverage: dict[str, float] = {}
    basis_checked = sizes_checked = 0
    for i, line in enumerate(_lines(name), 1):
        outputs = engine.process(line, i)
        if (
            not any(s == "dlq" for s, _, _ in outputs)
            and (record := orjson.loads(line)).get("type") == "stock"
        ):
            coverage[record["venue"]] = record["registered"] / record["open_interest"]
        view = observe(engine, {"XAG"})
        clock = engine.instruments["XAG"].clock if "XAG" in engine.instruments else -1
        assert view.clock == clock
        assert {(d.venue, d.coverage) for d in view.delivery} == set(coverage.items())
        basis = {(b.spot, b.future): b for b in view.basis}
        routes = {r.route: r for r in view.routes}
        for stream, _, out in outputs:
            if stream == "basis" and out["ts"] == clock:
                figures = basis[out["spot"], out["future"]].figures
                assert figures is not None
                for field in ("basis_bps", "lease_rate", "days", "carry", "basis"):
                    assert figures[field] == out[field], (i, field)
                basis_checked += 1
            elif out.get("kind") == "basis":
                assert basis[out["spot"], out["future"]].open == (out["event"] == "open")
            elif out.get("kind") == "delivery":
                opened = {d.venue for d in view.delivery if d.open}
                assert (out["venue"] in opened) == (out["event"] == "open")
            elif out.get("kind") == "arb" and out["event"] != "close":
                route = routes[f"{out['buy']}>{out['sell']}"]
                assert route.size_oz == out["size_oz"], i
                sizes_checked += route.size_oz is not None
    assert basis_checked > 100 and sizes_checked >= 4
