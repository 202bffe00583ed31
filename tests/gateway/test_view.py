"""The gateway's market view (gateway/view.py): what a new subscriber is sent first."""

from __future__ import annotations

from typing import Any

import orjson

from arbstream.config import load_config
from gateway.view import MAX_KEYS, Entry, MarketView
from helpers.paths import SCENARIOS
from streams.validation import check

CNY = SCENARIOS / "cny-holiday-2026-02"


def _entry(topic: str, record: dict[str, Any], key: str | None) -> Entry:
    return Entry(topic, key, record, orjson.dumps(record))


def _key(record: dict[str, Any]) -> str:
    i = record["instrument"]
    if record["type"] == "spread":
        return f"{i}|{record['a']}|{record['b']}"
    if record["type"] == "basis":
        return f"{i}|{record['spot']}|{record['future']}"
    kind = record["kind"]
    if kind == "arb":
        return f"{i}|arb|{record['buy']}>{record['sell']}"
    if kind == "basis":
        return f"{i}|basis|{record['spot']}>{record['future']}"
    return f"{i}|{kind}|{record['venue']}"


def _replayed_view() -> tuple[MarketView, list[dict[str, Any]]]:
    """The CNY scenario's ticks and expected outputs, in the order a worker writes them."""
    config = load_config(CNY / "config.toml")
    view = MarketView(config, "p.spreads", "p.signals", "p.basis")
    outputs = [orjson.loads(x) for x in (CNY / "expected.jsonl").read_bytes().splitlines()]
    ticks = [orjson.loads(x) for x in (CNY / "ticks.jsonl").read_bytes().splitlines() if x]
    applied = []
    for record in ticks:
        if isinstance(record, dict) and record.get("type") == "quote" and check(record)[0] is None:
            view.apply(_entry("p.ticks", record, record["instrument"]))
    for record in outputs:
        if record["type"] in ("spread", "signal", "basis"):
            view.apply(_entry(f"p.{record['type']}s", record, _key(record)))
            applied.append(record)
    return view, applied


def test_the_snapshot_is_the_latest_record_per_key_and_every_open_signal() -> None:
    view, outputs = _replayed_view()
    latest: dict[str, dict[str, Any]] = {}
    state: dict[str, dict[str, Any]] = {}
    for r in outputs:
        if r["type"] == "signal":
            state[_key(r)] = r
        else:
            latest[f"{r['type']} {_key(r)}"] = r  # a spread and a basis pair share keys
    open_signals = {f"signal {k}": r for k, r in state.items() if r["event"] != "close"}
    assert open_signals, "the scenario should end with signals open"
    assert len(state) > len(open_signals), "and some closed"
    got = {
        f"{e.record['type']} {e.key}": e.record
        for e in view.snapshot()
        if e.key and e.record["type"] != "quote"
    }
    assert got == {**latest, **open_signals}
    # quotes first, then spreads, basis and signals, each in key order
    kinds = [e.record["type"] for e in view.snapshot()]
    assert kinds == sorted(kinds, key=["quote", "spread", "basis", "signal"].index)


def test_venue_status_follows_sessions_and_quote_age() -> None:
    view, _ = _replayed_view()
    status = {(s["venue"], s["instrument"]): s for s in view.venue_status()}
    config = load_config(CNY / "config.toml")
    assert {v for v, _ in status} == set(config.venues)
    clock = view.clocks["XAG"]
    for (venue, instrument), s in status.items():
        calendar = config.calendars[venue]
        expected_open = calendar is None or calendar.is_open(clock)
        assert s["open"] is expected_open, venue
        if not expected_open:
            assert s["status"] == "closed"
        elif s["age_ms"] is None or s["age_ms"] > config.stale_ms[venue]:
            assert s["status"] == "stale"
        else:
            assert s["status"] == "live"
        if instrument is not None:
            assert s["age_ms"] == clock - view.quotes[(instrument, venue)].record["ts"]


def test_a_closed_signal_leaves_the_snapshot_and_size_is_bounded() -> None:
    config = load_config(CNY / "config.toml")
    view = MarketView(config, "p.spreads", "p.signals", "p.basis")
    opened = {"type": "signal", "kind": "wide", "event": "open", "instrument": "XAG", "venue": "V"}
    view.apply(_entry("p.signals", opened, "XAG|wide|V"))
    assert [e.key for e in view.snapshot()] == ["XAG|wide|V"]
    view.apply(_entry("p.signals", {**opened, "event": "close"}, "XAG|wide|V"))
    assert list(view.snapshot()) == []
    for i in range(MAX_KEYS + 50):
        spread = {"type": "spread", "instrument": "XAG", "a": "A", "b": f"B{i}", "ts": i}
        view.apply(_entry("p.spreads", spread, f"XAG|A|B{i}"))
    assert len(view.spreads) == MAX_KEYS


def test_a_late_quote_is_neither_kept_nor_forwarded() -> None:
    view = MarketView(load_config(CNY / "config.toml"), "p.spreads", "p.signals", "p.basis")
    quote = {"type": "quote", "venue": "LBMA", "instrument": "XAG", "bid": 1.0, "ask": 2.0}
    assert view.apply(_entry("p.ticks", {**quote, "ts": 2000}, "XAG"))
    assert not view.apply(_entry("p.ticks", {**quote, "ts": 1000, "bid": 1.5}, "XAG"))
    assert view.quotes["XAG", "LBMA"].record["ts"] == 2000
    assert view.apply(_entry("p.ticks", {**quote, "ts": 2000, "bid": 1.1}, "XAG"))  # same ts: kept


def test_an_instrument_whose_quotes_stop_arriving_goes_stale_on_the_wall_clock() -> None:
    """A market clock stops when every feed (or the broker) does: ages on it freeze, so
    the wall clock since the last arrival decides."""
    now = [100.0]
    config = load_config(SCENARIOS / "dislocation-2026-01-30" / "config.toml")
    view = MarketView(config, "p.spreads", "p.signals", "p.basis", monotonic=lambda: now[0])
    quote = {"type": "quote", "venue": "COMEX", "instrument": "XAG", "bid": 1.0, "ask": 2.0}
    view.apply(_entry("p.ticks", {**quote, "ts": 1769781600000}, "XAG"))
    comex = next(s for s in view.venue_status() if s["venue"] == "COMEX")
    assert (comex["status"], comex["age_ms"], comex["silent_ms"]) == ("live", 0, 0)
    now[0] += config.stale_ms["COMEX"] / 1000 + 0.5
    comex = next(s for s in view.venue_status() if s["venue"] == "COMEX")
    assert (comex["status"], comex["age_ms"]) == ("stale", 0)
    assert comex["silent_ms"] == config.stale_ms["COMEX"] + 500
