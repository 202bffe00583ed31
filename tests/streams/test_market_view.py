"""The market view (streams/market_view.py): what a new subscriber is sent first, what
the dashboard shows, and each venue's status by the engine's freshness rule."""

from __future__ import annotations

from typing import Any

import orjson

from arbstream.config import load_config
from arbstream.streams.engine import Engine
from arbstream.streams.freshness import venue_status
from arbstream.streams.market_view import MAX_KEYS, MarketView, TopicRecord
from helpers.paths import SCENARIOS

CNY = SCENARIOS / "cny-holiday-2026-02"


def _entry(topic: str, record: dict[str, Any], key: str | None) -> TopicRecord:
    return TopicRecord(topic, key, record, orjson.dumps(record))


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
    view = MarketView(config)
    outputs = [orjson.loads(x) for x in (CNY / "expected.jsonl").read_bytes().splitlines()]
    ticks = [orjson.loads(x) for x in (CNY / "ticks.jsonl").read_bytes().splitlines() if x]
    applied = []
    for record in ticks:
        if isinstance(record, dict):  # (the view sorts out what is not a valid quote)
            view.apply(_entry("p.ticks", record, record.get("instrument")), 0.0)
    for record in outputs:
        if record["type"] in ("spread", "signal", "basis"):
            assert view.apply(_entry(f"p.{record['type']}s", record, _key(record)), 0.0)
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
    status = {(s["venue"], s["instrument"]): s for s in view.venue_status(0.0)}
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
    view = MarketView(config)
    opened = {"type": "signal", "kind": "wide", "event": "open", "instrument": "XAG",
              "venue": "V", "ts": 5, "bid": 1.0, "ask": 2.0, "width_bps": 6667.0}  # fmt: skip
    view.apply(_entry("p.signals", opened, "XAG|wide|V"), 0.0)
    assert [e.key for e in view.snapshot()] == ["XAG|wide|V"]
    view.apply(_entry("p.signals", {**opened, "event": "close"}, "XAG|wide|V"), 0.0)
    assert list(view.snapshot()) == []
    for i in range(MAX_KEYS + 50):
        spread = {"type": "spread", "instrument": "XAG", "a": "A", "b": f"B{i}", "ts": i,
                  "spread": 0.5, "spread_bps": 10.0}  # fmt: skip
        view.apply(_entry("p.spreads", spread, f"XAG|A|B{i}"), 0.0)
    assert len(view.spreads) == MAX_KEYS
    assert view.other == 50  # beyond the bound: counted, not kept
    assert view.spread_count == MAX_KEYS


def test_a_late_quote_is_neither_kept_nor_forwarded() -> None:
    view = MarketView(load_config(CNY / "config.toml"))
    quote = {"type": "quote", "venue": "LBMA", "instrument": "XAG", "bid": 1.0, "ask": 2.0}
    assert view.apply(_entry("p.ticks", {**quote, "ts": 2000}, "XAG"), 0.0)
    assert not view.apply(_entry("p.ticks", {**quote, "ts": 1000, "bid": 1.5}, "XAG"), 0.0)
    assert view.quotes["XAG", "LBMA"].record["ts"] == 2000
    assert view.apply(_entry("p.ticks", {**quote, "ts": 2000, "bid": 1.1}, "XAG"), 0.0)  # same ts
    assert view.quote_counts["LBMA"] == 2


def test_an_instrument_whose_quotes_stop_arriving_goes_stale_on_the_wall_clock() -> None:
    """A market clock stops when every feed (or the broker) does: ages on it freeze, so
    the wall clock since the last arrival decides."""
    now = 100.0
    config = load_config(SCENARIOS / "dislocation-2026-01-30" / "config.toml")
    view = MarketView(config)
    quote = {"type": "quote", "venue": "COMEX", "instrument": "XAG", "bid": 1.0, "ask": 2.0}
    view.apply(_entry("p.ticks", {**quote, "ts": 1769781600000}, "XAG"), now)
    comex = next(s for s in view.venue_status(now) if s["venue"] == "COMEX")
    assert (comex["status"], comex["age_ms"], comex["silent_ms"]) == ("live", 0, 0)
    now += config.stale_ms["COMEX"] / 1000 + 0.5
    comex = next(s for s in view.venue_status(now) if s["venue"] == "COMEX")
    assert (comex["status"], comex["age_ms"]) == ("stale", 0)
    assert comex["silent_ms"] == config.stale_ms["COMEX"] + 500


def test_venue_status_is_the_engines_freshness_at_every_record() -> None:
    """A venue the view calls live is one whose quote the engine holds fresh (FX aside:
    the view has no FX book), and closed when the engine's session rule says so; at every
    record of a scenario with sessions and a holiday."""
    config = load_config(CNY / "config.toml")
    engine, view = Engine(config), MarketView(config)
    lines = (CNY / "ticks.jsonl").read_bytes().splitlines()
    checked = 0
    seen: set[str] = set()
    for offset, line in enumerate(lines):
        engine.process(line, offset)
        record = orjson.loads(line)
        if isinstance(record, dict) and record.get("type") == "quote":
            view.apply(_entry("p.ticks", record, record.get("instrument")), 0.0)
        st = engine.instruments.get("XAG")
        if st is None:
            continue
        status = {s["venue"]: s["status"] for s in view.venue_status(0.0) if s["instrument"]}
        for venue, q in st.quotes.items():
            calendar = config.calendars.get(venue)
            expected = venue_status(st.clock, q.ts, None, q.stale_ms, calendar)
            assert status[venue] == expected, (offset, venue)
            seen.add(expected)
            is_open = calendar is None or calendar.is_open(st.clock)
            assert (expected == "live") == (is_open and st.clock - q.ts <= q.stale_ms)
            checked += 1
    assert checked > 1000
    assert seen == {"live", "stale", "closed"}


def test_malformed_records_are_counted_never_raise_and_are_not_forwarded() -> None:
    view = MarketView(load_config(CNY / "config.toml"))
    bad: list[tuple[str, dict[str, Any], str | None]] = [
        ("p.ticks", {}, None),
        ("p.ticks", {"type": "trade", "venue": "LBMA"}, None),
        ("p.ticks", {"type": "quote", "venue": "LBMA", "instrument": "XAG", "bid": 1.0}, "XAG"),
        (
            "p.ticks",
            {
                "type": "quote",
                "venue": "NOWHERE",
                "instrument": "XAG",
                "bid": 1.0,
                "ask": 2.0,
                "ts": 1,
            },
            "XAG",
        ),
        ("p.ticks", {"type": "fx", "pair": "USDCNY", "bid": 7.1, "ts": 1}, None),
        (
            "p.spreads",
            {
                "type": "spread",
                "instrument": "XAG",
                "a": "A",
                "b": "B",
                "ts": 1,
                "spread": None,
                "spread_bps": 1.0,
            },
            "XAG|A|B",
        ),
        (
            "p.spreads",
            {
                "type": "spread",
                "instrument": "XAG",
                "a": "A",
                "b": 7,
                "ts": 1,
                "spread": 1.0,
                "spread_bps": 1.0,
            },
            "XAG|A|B",
        ),
        ("p.spreads", {"type": "spread", "instrument": "XAG"}, None),  # no key
        (
            "p.signals",
            {
                "type": "signal",
                "kind": "arb",
                "event": "open",
                "instrument": "XAG",
                "buy": "A",
                "sell": "B",
                "ts": 1,
                "net": "5",
            },
            "k",
        ),
        (
            "p.signals",
            {
                "type": "signal",
                "kind": "arb",
                "event": "open",
                "instrument": "XAG",
                "buy": "A",
                "sell": "B",
                "ts": True,
                "net": 5.0,
            },
            "k",
        ),
        (
            "p.signals",
            {"type": "signal", "kind": "x" * 65, "event": "open", "instrument": "XAG", "ts": 1},
            "k",
        ),
        ("p.basis", {"type": "basis", "instrument": "XAG"}, "k"),
    ]
    for topic, record, key in bad:
        assert not view.apply(_entry(topic, record, key), 0.0), record
    assert view.other == len(bad)
    assert list(view.snapshot()) == []
    assert view.fx == {}
    assert view.spread_count == 0 and view.signal_counts == {}


def test_a_halt_signal_makes_its_venue_halted_and_crosses_are_kept_in_order() -> None:
    config = load_config(CNY / "config.toml")
    view = MarketView(config)
    quote = {"type": "quote", "venue": "LBMA", "instrument": "XAG", "bid": 1.0, "ask": 2.0}
    view.apply(_entry("p.ticks", {**quote, "ts": 5000}, "XAG"), 0.0)
    status = {"type": "status", "venue": "LBMA", "instrument": "XAG", "status": "halted",
              "ts": 5001}  # fmt: skip
    assert not view.apply(_entry("p.ticks", status, "XAG"), 0.0)  # (its halt signal says it)
    assert view.other == 0
    halt = {"type": "signal", "kind": "halt", "event": "open", "instrument": "XAG",
            "venue": "LBMA", "ts": 5001, "opened_ts": 5001, "note": None}  # fmt: skip
    assert view.apply(_entry("p.signals", halt, "XAG|halt|LBMA"), 0.0)
    lbma = next(s for s in view.venue_status(0.0) if s["venue"] == "LBMA")
    assert (lbma["status"], lbma["open"]) == ("halted", True)
    view.apply(
        _entry("p.signals", {**halt, "event": "close", "duration_ms": 9}, "XAG|halt|LBMA"), 0.0
    )
    lbma = next(s for s in view.venue_status(0.0) if s["venue"] == "LBMA")
    assert lbma["status"] != "halted"
    cross = {"type": "signal", "kind": "level", "event": "cross", "instrument": "XAG",
             "venue": "LBMA", "name": "100", "ts": 6000, "price": 100.0, "direction": "up",
             "mid": 100.5}  # fmt: skip
    for i in range(25):
        direction = "up" if i % 2 == 0 else "down"
        item = _entry(
            "p.signals", {**cross, "ts": 6000 + i, "direction": direction}, "XAG|level|100"
        )
        assert view.apply(item, 0.0)
    assert len(view.crosses) == 20 and view.crosses[-1].record["ts"] == 6024
    # the latest cross of each level is in the snapshot, as a signal's state is
    assert [e.record["ts"] for e in view.snapshot() if e.key == "XAG|level|100"] == [6024]
    assert view.levels() == []  # the scenario's config has none
