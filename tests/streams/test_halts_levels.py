"""Halts and price levels (docs/evaluation.md, "Halts" and "Price levels"; version 3):
status records and their validation, halt signals, the `halted` close reason of routes
and backwardation, level crosses with their band, output order, and the state that
carries both across a restart."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import orjson
import pytest

from arbstream.config import parse_config
from arbstream.streams.engine import Engine, Output
from arbstream.streams.errors import ConfigError

T0 = 1_770_940_800_000  # 2026-02-13 00:00 UTC


def config(**extra: Any) -> dict[str, Any]:
    """Two USD/oz venues and an ETF-like third, one route each way, a basis pair."""
    base: dict[str, Any] = {
        "defaults": {"stale_ms": 5000, "windows_ms": [60000]},
        "arb": {"open_usd": 0.5, "close_usd": 0.25, "persist_ms": 0, "update_usd": 100.0},
        "venues": {
            "COMEX": {"currency": "USD", "unit": "oz"},
            "LBMA": {"currency": "USD", "unit": "oz"},
            "FUT": {"currency": "USD", "unit": "oz", "expiry": date(2026, 6, 26)},
        },
        "routes": [{"buy": "COMEX", "sell": "LBMA"}, {"buy": "LBMA", "sell": "COMEX"}],
        "basis": {"open_bps": 50, "close_bps": 10, "pairs": [{"spot": "LBMA", "future": "FUT"}]},
    }
    return base | extra


def engine(**extra: Any) -> Engine:
    return Engine(parse_config(config(**extra)))


def quote(venue: str, bid: float, ask: float, ts: int, instrument: str = "XAG") -> bytes:
    return orjson.dumps(
        {"type": "quote", "venue": venue, "instrument": instrument, "bid": bid, "ask": ask,
         "ts": ts}
    )  # fmt: skip


def status(venue: str, state: str, ts: int, **more: Any) -> bytes:
    record = {"type": "status", "venue": venue, "instrument": "XAG", "status": state, "ts": ts}
    return orjson.dumps(record | more)


def feed(e: Engine, *lines: bytes) -> list[Output]:
    out: list[Output] = []
    for i, line in enumerate(lines, 1):
        out += e.process(line, i)
    return out


def signals(out: list[Output], kind: str | None = None) -> list[dict[str, Any]]:
    return [r for s, _, r in out if s == "signals" and (kind is None or r["kind"] == kind)]


# -- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"type": "status", "venue": "COMEX", "instrument": "XAG", "ts": 1}, "missing_field"),
        ({"type": "status", "venue": "COMEX", "status": "halted", "ts": 1}, "missing_field"),
        (
            {"type": "status", "venue": "COMEX", "instrument": "XAG", "status": "halted"},
            "missing_field",
        ),
        (
            {"type": "status", "venue": "COMEX", "instrument": "XAG", "status": "paused", "ts": 1},
            "bad_value",
        ),
        (
            {"type": "status", "venue": "COMEX", "instrument": "XAG", "status": None, "ts": 1},
            "bad_value",
        ),
        (
            {"type": "status", "venue": "COMEX", "instrument": "XAG", "status": "halted", "ts": -1},
            "bad_value",
        ),
        (
            {
                "type": "status",
                "venue": "COMEX",
                "instrument": "XAG",
                "status": "halted",
                "ts": True,
            },
            "bad_value",
        ),
        (
            {"type": "status", "venue": "", "instrument": "XAG", "status": "halted", "ts": 1},
            "bad_value",
        ),
        (
            {
                "type": "status",
                "venue": "COMEX",
                "instrument": "X" * 65,
                "status": "halted",
                "ts": 1,
            },
            "bad_value",
        ),
        (
            {"type": "status", "venue": "NYMEX", "instrument": "XAG", "status": "halted", "ts": 1},
            "unknown_venue",
        ),
        (
            {
                "type": "statuses",
                "venue": "COMEX",
                "instrument": "XAG",
                "status": "halted",
                "ts": 1,
            },
            "bad_type",
        ),
    ],
)
def test_a_status_record_is_validated_in_the_contract_order(
    record: dict[str, Any], reason: str
) -> None:
    ((stream, key, out),) = engine().process(orjson.dumps(record), 7)
    assert (stream, key, out["reason"], out["source"]) == ("dlq", None, reason, {"line": 7})


def test_an_older_status_is_out_of_order_and_a_repeated_one_moves_only_its_ts() -> None:
    e = engine()
    assert signals(feed(e, status("COMEX", "halted", T0 + 10)), "halt")
    assert feed(e, status("COMEX", "halted", T0 + 20)) == []  # repeated: nothing
    ((stream, _, rejected),) = e.process(status("COMEX", "trading", T0 + 15), 3)
    assert (stream, rejected["reason"]) == ("dlq", "out_of_order")
    # the older trading record changed nothing: the venue is still halted
    assert e.instruments["XAG"].halted == {"COMEX": T0 + 10}


# -- halt signals ------------------------------------------------------------------------


def test_a_halt_opens_once_and_closes_with_its_duration_and_each_events_note() -> None:
    e = engine()
    out = feed(
        e,
        status("COMEX", "halted", T0, note="circuit breaker"),
        status("COMEX", "halted", T0 + 5, note="still"),
        status("COMEX", "trading", T0 + 60_000, note="x" * 201),
    )
    opened, closed = signals(out, "halt")
    assert opened == {
        "type": "signal", "kind": "halt", "event": "open", "instrument": "XAG",
        "venue": "COMEX", "ts": T0, "opened_ts": T0, "note": "circuit breaker", "seq": 1,
    }  # fmt: skip
    assert closed["event"] == "close" and closed["opened_ts"] == T0
    assert closed["duration_ms"] == 60_000 and closed["ts"] == T0 + 60_000
    assert closed["note"] is None  # longer than 200 characters
    assert closed["seq"] == 2
    keys = [k for s, k, _ in out if s == "signals"]
    assert keys == ["XAG|halt|COMEX", "XAG|halt|COMEX"]


def test_a_status_record_moves_the_clock_and_emits_no_spread_basis_record_or_wide() -> None:
    e = engine()
    feed(e, quote("COMEX", 70.0, 70.1, T0), quote("LBMA", 70.0, 70.1, T0))
    out = feed(e, status("LBMA", "halted", T0 + 1000))
    assert e.instruments["XAG"].clock == T0 + 1000
    assert {r["kind"] for r in signals(out)} == {"halt"}
    assert [s for s, _, _ in out] == ["signals"]


def test_an_open_route_closes_halted_at_once_and_reopens_after_trading() -> None:
    e = engine()
    out = feed(e, quote("COMEX", 70.0, 70.1, T0), quote("LBMA", 71.0, 71.1, T0 + 1))
    assert [r["event"] for r in signals(out, "arb")] == ["open"]
    out = feed(e, status("LBMA", "halted", T0 + 2, note="fixing suspended"))
    assert [(r["kind"], r["event"], r.get("reason")) for r in signals(out)] == [
        ("halt", "open", None),
        ("arb", "close", "halted"),
    ]
    arb_close = signals(out, "arb")[0]
    assert arb_close["ts"] == T0 + 2 and arb_close["buy"] == "COMEX"
    # quotes of the halted venue are accepted (they move the clock) but never a leg
    out = feed(e, quote("LBMA", 72.0, 72.1, T0 + 3))
    assert signals(out, "arb") == [] and [s for s, _, _ in out if s == "spreads"] == []
    assert e.instruments["XAG"].quotes["LBMA"].bid == 72.0
    out = feed(e, status("LBMA", "trading", T0 + 4))
    assert [(r["kind"], r["event"]) for r in signals(out)] == [("halt", "close"), ("arb", "open")]


def test_a_route_closed_by_a_halted_leg_is_halted_even_when_the_leg_is_also_stale() -> None:
    e = engine()
    feed(e, quote("COMEX", 70.0, 70.1, T0), quote("LBMA", 71.0, 71.1, T0 + 1))
    e.process(status("COMEX", "halted", T0 + 2), 3)  # (closes the route: halted)
    e.process(status("COMEX", "trading", T0 + 3), 4)
    e.process(quote("COMEX", 70.0, 70.1, T0 + 4), 5)  # reopens
    out = e.process(status("LBMA", "halted", T0 + 10_000), 6)  # LBMA stale by now, too
    assert [r.get("reason") for r in signals(out, "arb")] == ["halted"]


def test_backwardation_closes_halted_when_its_spot_or_future_halts() -> None:
    e = engine()
    out = feed(e, quote("LBMA", 80.0, 80.1, T0), quote("FUT", 78.0, 78.1, T0 + 1))
    assert [(r["kind"], r["event"]) for r in signals(out) if r["kind"] == "basis"] == [
        ("basis", "open")
    ]
    out = feed(e, status("FUT", "halted", T0 + 2))
    assert [(r["kind"], r["event"], r.get("reason")) for r in signals(out)] == [
        ("halt", "open", None),
        ("basis", "close", "halted"),
    ]
    assert [s for s, _, _ in out] == ["signals", "signals"]  # no basis record


def test_a_halt_before_any_quote_keeps_the_venues_first_quote_out() -> None:
    e = engine()
    feed(e, status("COMEX", "halted", T0), quote("LBMA", 71.0, 71.1, T0 + 1))
    out = feed(e, quote("COMEX", 70.0, 70.1, T0 + 2))
    assert [s for s, _, _ in out] == []  # no spread, no route: COMEX is halted
    out = feed(e, status("COMEX", "trading", T0 + 3), quote("COMEX", 70.0, 70.1, T0 + 4))
    assert [s for s, _, _ in out if s == "spreads"] == ["spreads"]


# -- levels --------------------------------------------------------------------------------

LEVELS = [
    {"name": "resistance-120", "instrument": "XAG", "venue": "COMEX", "price": 120.0,
     "band_usd": 0.5},
    {"name": "100", "instrument": "XAG", "venue": "COMEX", "price": 100.0},
]  # fmt: skip


def crosses(out: list[Output]) -> list[tuple[str, str, float]]:
    return [(r["name"], r["direction"], r["mid"]) for r in signals(out, "level")]


def test_a_level_takes_its_side_silently_then_crosses_out_of_its_band() -> None:
    e = engine(levels=LEVELS)
    assert crosses(feed(e, quote("COMEX", 119.0, 119.2, T0))) == []  # the first quote: sides
    assert e.instruments["XAG"].level_sides == {"100": "above", "resistance-120": "below"}
    assert crosses(feed(e, quote("COMEX", 120.0, 120.2, T0 + 1))) == []  # 120.1: in the band
    out = feed(e, quote("COMEX", 120.4, 120.6, T0 + 2))  # 120.5 >= 120 + 0.5
    assert crosses(out) == [("resistance-120", "up", 120.5)]
    (record,) = signals(out, "level")
    assert record == {
        "type": "signal", "kind": "level", "event": "cross", "instrument": "XAG",
        "venue": "COMEX", "name": "resistance-120", "ts": T0 + 2, "price": 120.0,
        "direction": "up", "mid": 120.5, "seq": 1,
    }  # fmt: skip
    assert [k for s, k, _ in out if s == "signals"] == ["XAG|level|resistance-120"]
    assert crosses(feed(e, quote("COMEX", 119.6, 119.7, T0 + 3))) == []  # 119.65: in the band
    out = feed(e, quote("COMEX", 99.0, 99.2, T0 + 4))  # both fall: name order
    assert crosses(out) == [("100", "down", 99.1), ("resistance-120", "down", 99.1)]


def test_a_level_on_a_stale_or_halted_venue_keeps_its_side_and_emits_nothing() -> None:
    e = engine(levels=LEVELS[1:])
    feed(e, quote("COMEX", 99.0, 99.2, T0))
    e.process(status("COMEX", "halted", T0 + 1), 2)
    assert crosses(feed(e, quote("COMEX", 101.0, 101.2, T0 + 2))) == []  # halted
    e.process(status("COMEX", "trading", T0 + 3), 4)
    # (an older quote than the venue's latest is out of order; this one crosses)
    assert crosses(feed(e, quote("COMEX", 101.0, 101.2, T0 + 4))) == [("100", "up", 101.1)]


def test_level_signals_come_last_among_a_quotes_outputs() -> None:
    e = engine(levels=LEVELS[1:], wide={"open_bps": 100, "close_bps": 50})
    feed(e, quote("LBMA", 99.0, 99.2, T0), quote("COMEX", 98.0, 98.2, T0 + 1))
    out = feed(e, quote("COMEX", 101.0, 103.0, T0 + 2))  # wide, and crosses 100
    kinds = [r["kind"] if s == "signals" else s for s, _, r in out]
    assert kinds[-2:] == ["wide", "level"] and kinds[0] == "spreads"


@pytest.mark.parametrize(
    ("level", "key"),
    [
        ({"instrument": "XAG", "venue": "COMEX", "price": 1.0}, "levels[0].name"),
        ({"name": "a", "venue": "COMEX", "price": 1.0}, "levels[0].instrument"),
        ({"name": "a", "instrument": "XAG", "price": 1.0}, "levels[0].venue"),
        ({"name": "a", "instrument": "XAG", "venue": "COMEX"}, "levels[0].price"),
        ({"name": "a", "instrument": "XAG", "venue": "NYMEX", "price": 1.0}, "levels[0].venue"),
        ({"name": "a", "instrument": "XAG", "venue": "COMEX", "price": 0.0}, "levels[0].price"),
        (
            {"name": "a", "instrument": "XAG", "venue": "COMEX", "price": 1.0, "band_usd": -1},
            "levels[0].band_usd",
        ),
        ({"name": "", "instrument": "XAG", "venue": "COMEX", "price": 1.0}, "levels[0].name"),
        (
            {"name": "n" * 65, "instrument": "XAG", "venue": "COMEX", "price": 1.0},
            "levels[0].name",
        ),
        (
            {"name": "a", "instrument": "XAG", "venue": "COMEX", "price": 1.0, "bnad_usd": 1},
            "levels[0].bnad_usd",
        ),
    ],
)
def test_a_bad_level_is_a_config_error_naming_its_key(level: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=f"  {re.escape(key)}:"):
        parse_config(config(levels=[level]))


def test_two_levels_of_one_name_for_one_instrument_are_an_error_for_two_they_are_not() -> None:
    level = {"name": "a", "instrument": "XAG", "venue": "COMEX", "price": 1.0}
    with pytest.raises(ConfigError, match=r"levels\[1\]\.name: duplicate level 'a'"):
        parse_config(config(levels=[level, level]))
    parse_config(config(levels=[level, level | {"instrument": "XAU"}]))


def test_a_config_without_levels_keeps_its_fingerprint() -> None:
    """A worker's state is stored under the config's fingerprint: version 2 configs keep
    theirs, so upgrading does not throw their workers' state away."""
    plain = parse_config(config())
    assert '"levels"' not in plain.fingerprint()
    assert '"levels"' in parse_config(config(levels=LEVELS)).fingerprint()


# -- state ---------------------------------------------------------------------------------


def test_a_restored_engine_is_still_halted_and_knows_its_levels_sides() -> None:
    lines = [
        quote("COMEX", 99.0, 99.2, T0),
        quote("LBMA", 99.5, 99.7, T0 + 1),
        status("LBMA", "halted", T0 + 2, note="maintenance"),
        quote("COMEX", 100.5, 100.7, T0 + 3),
        status("LBMA", "trading", T0 + 4),
        quote("LBMA", 99.5, 99.7, T0 + 5),
        quote("COMEX", 98.0, 98.2, T0 + 6),
    ]
    whole = engine(levels=LEVELS[1:])
    expected = feed(whole, *lines)
    for cut in range(1, len(lines)):
        first = engine(levels=LEVELS[1:])
        before = feed(first, *lines[:cut])
        resumed = engine(levels=LEVELS[1:])
        resumed.load(first.snapshot())
        after = [o for i, line in enumerate(lines[cut:], cut + 1) for o in resumed.process(line, i)]
        assert orjson.dumps(before + after) == orjson.dumps(expected), cut
    assert [r["kind"] for r in signals(expected)].count("level") == 2
