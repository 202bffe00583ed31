"""Market structure in the engine (docs/evaluation.md): sizes at the edge, routes that
close because a venue closed, stock records and delivery stress, basis expiry."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from arbstream.config import parse_config
from arbstream.streams.engine import Engine

T0 = int(datetime(2026, 2, 10, 2, 0, tzinfo=UTC).timestamp() * 1000)  # Tue 10:00 Shanghai


def quote(venue: str, bid: float, ask: float, ts: int, **extra: Any) -> bytes:
    record = {"type": "quote", "venue": venue, "instrument": "XAG", "bid": bid, "ask": ask}
    return orjson.dumps(record | {"ts": ts} | extra)


def engine(**venues: dict[str, Any]) -> Engine:
    base = {"currency": "USD", "unit": "oz"}
    config = parse_config(
        {
            "defaults": {"stale_ms": 3_600_000},
            "arb": {"open_usd": 1.0, "close_usd": 0.5, "persist_ms": 0, "update_usd": 100.0},
            "venues": {name: base | v for name, v in venues.items()},
            "routes": [{"buy": "A", "sell": "B"}],
        }
    )
    return Engine(config)


def signals(e: Engine, line: bytes) -> list[dict[str, Any]]:
    return [r for s, _, r in e.process(line, 1) if s == "signals"]


@pytest.mark.parametrize(
    ("ask_size", "bid_size", "size_oz"),
    [
        (9, 2, 2 * 10 * 32.1507466),  # B takes 2 lots of 10 kg; A offers 900 oz
        (1, 9, 1 * 100.0),  # A's ask: 1 lot of 100 oz
        (None, 2, None),  # absent
        (True, 2, None),  # booleans are not numbers
        (-1, 2, None),
        ("5", 2, None),
        (float("inf"), 2, None),
    ],
)
def test_size_at_the_edge(ask_size: Any, bid_size: Any, size_oz: float | None) -> None:
    e = engine(A={"lot": 100}, B={"unit": "kg", "lot": 10})
    a_extra = {} if ask_size is None else {"ask_size": ask_size}
    if isinstance(ask_size, float):  # orjson refuses inf: write the JSON by hand
        line = quote("A", 79.0, 80.0, T0)[:-1] + b', "ask_size": 1e999}'
    else:
        line = quote("A", 79.0, 80.0, T0, **a_extra)
    assert signals(e, line) == []
    kg = 32.1507466
    (opened,) = signals(e, quote("B", 85.0 * kg, 86.0 * kg, T0, bid_size=bid_size))
    assert opened["event"] == "open"
    if size_oz is None:
        assert opened["size_oz"] is None and opened["edge_usd"] is None
    else:
        assert opened["size_oz"] == pytest.approx(size_oz)
        assert opened["edge_usd"] == pytest.approx(opened["net"] * size_oz)


def test_a_route_closes_as_closed_when_a_venue_closes_and_as_stale_otherwise() -> None:
    shanghai = {"timezone": "Asia/Shanghai", "sessions": ["09:00-11:30"]}
    e = engine(A={}, B=shanghai | {"stale_ms": 600_000})
    signals(e, quote("A", 79.0, 80.0, T0))
    assert signals(e, quote("B", 85.0, 86.0, T0))[0]["event"] == "open"
    # 11:31 in Shanghai: B closed (its last quote is still young)
    (closed,) = signals(e, quote("A", 79.0, 80.0, T0 + 91 * 60_000))
    assert (closed["event"], closed["reason"]) == ("close", "closed")
    # the next day's session, then B's quote ages past stale_ms while open
    day2 = T0 + 86_400_000
    signals(e, quote("B", 85.0, 86.0, day2))
    assert signals(e, quote("A", 79.0, 80.0, day2))[0]["event"] == "open"
    (stale,) = signals(e, quote("A", 79.0, 80.0, day2 + 700_000))
    assert (stale["event"], stale["reason"]) == ("close", "stale")


def stock(venue: str, registered: Any, open_interest: Any, ts: int) -> bytes:
    return orjson.dumps(
        {"type": "stock", "venue": venue, "instrument": "XAG", "registered": registered}
        | {"open_interest": open_interest, "ts": ts}
    )


def test_delivery_stress_opens_and_closes_with_hysteresis_per_venue() -> None:
    e = engine(A={}, B={})
    (opened,) = signals(e, stock("A", 102_000_000, 366_000_000, 10))
    assert opened == {
        "type": "signal",
        "kind": "delivery",
        "event": "open",
        "instrument": "XAG",
        "venue": "A",
        "ts": 10,
        "registered": 102_000_000,
        "open_interest": 366_000_000,
        "coverage": 102_000_000 / 366_000_000,
        "seq": 1,
    }
    assert signals(e, stock("A", 55, 100, 20)) == []  # 0.55: between the ratios
    assert signals(e, stock("B", 10, 100, 5)) != []  # another venue, its own state
    (closed,) = signals(e, stock("A", 60, 100, 30))
    assert (closed["event"], closed["seq"]) == ("close", 2)
    # out of order per venue: older than A's latest, not B's
    (rejected,) = [r for _, _, r in e.process(stock("A", 1, 100, 25), 9)]
    assert rejected["reason"] == "out_of_order"
    assert e.process(stock("B", 70, 100, 6), 10)[0][2]["event"] == "close"
    # a stock record moves no clock and triggers no price evaluation
    assert "XAG" in e.instruments and e.instruments["XAG"].clock == -1


def test_an_open_backwardation_closes_as_expired_at_the_future_s_expiry() -> None:
    config = parse_config(
        {
            "defaults": {"stale_ms": 10**12},
            "arb": {"open_usd": 1000.0},  # no arbitrage signals in the way
            "venues": {
                "S": {"currency": "USD", "unit": "oz"},
                "F": {"currency": "USD", "unit": "oz", "expiry": date(2026, 2, 11)},
            },
            "basis": {"pairs": [{"spot": "S", "future": "F"}], "emit_ms": 0},
        }
    )
    e = Engine(config)
    e.process(quote("S", 99.0, 101.0, T0), 1)
    out = e.process(quote("F", 95.0, 96.0, T0), 2)
    streams = [s for s, _, _ in out]
    assert streams == ["spreads", "basis", "signals"]
    basis, opened = out[1][2], out[2][2]
    assert basis["days"] == pytest.approx(22 / 24)  # 02:00 UTC to 00:00 UTC next day
    assert basis["carry"] is None and basis["lease_rate"] is None  # days < 1
    assert (opened["kind"], opened["event"]) == ("basis", "open")
    expiry = int(datetime(2026, 2, 11, tzinfo=UTC).timestamp() * 1000)
    out = e.process(quote("S", 99.0, 101.0, expiry), 3)
    (closed,) = [r for s, _, r in out if s == "signals"]
    assert (closed["event"], closed["reason"], closed["days"]) == ("close", "expired", 0.0)
    assert [s for s, _, _ in out] == ["spreads", "signals"]  # no basis record once expired
