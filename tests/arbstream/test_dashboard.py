"""The live dashboard (arbstream/dashboard.py): the market view's picture rendered, with
counts, open signals, tick rates, ages and each venue's status."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
from rich.console import Console

from arbstream.config import parse_config
from arbstream.dashboard import Dashboard
from arbstream.gateway.alerts import AlertsReport, parse_alerts, with_resolved
from arbstream.streams.market_view import MAX_KEYS, MarketView, TopicRecord

VENUES = ("COMEX", "LBMA", "SHFE", "SGE", "SHUIBEI")
WINDOWS = (60_000, 300_000)
T0 = 1_769_990_400_000  # event time (instrument clock)
NOW = 1_770_000_000_000  # wall clock of the observing process

ZERO_SIGNALS = {
    "arb.open": 0, "arb.close": 0, "arb.update": 0, "wide.open": 0, "wide.close": 0,
    "halt.open": 0, "level.cross": 0,
}  # fmt: skip


def quote(venue: str, bid: float, ask: float, ts: int, **extra: Any) -> dict[str, Any]:
    base = {"type": "quote", "venue": venue, "instrument": "XAG", "bid": bid, "ask": ask, "ts": ts}
    return base | extra


def fx(mid: float, ts: int) -> dict[str, Any]:
    return {"type": "fx", "pair": "USDCNY", "bid": mid - 0.0003, "ask": mid + 0.0003, "ts": ts}


def spread(a: str, b: str, value: float, ts: int, z: float | None = -1.7) -> dict[str, Any]:
    return {
        "type": "spread",
        "instrument": "XAG",
        "a": a,
        "b": b,
        "ts": ts,
        "a_mid": 78.525,
        "b_mid": 78.525 - value,
        "spread": value,
        "spread_bps": value / (78.525 - value) * 10_000,
        "windows": {
            "60000": {"n": 12, "mean": -6.1, "std": 0.4, "min": -6.9, "max": -5.5, "z": z},
            "300000": {"n": 1, "mean": value, "std": 0.0, "min": value, "max": value, "z": None},
        },
    }


def arb(event: str, net: float, ts: int, buy: str = "COMEX", sell: str = "SHFE") -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "signal",
        "kind": "arb",
        "event": event,
        "instrument": "XAG",
        "buy": buy,
        "sell": sell,
        "ts": ts,
        "opened_ts": T0,
        "buy_px": 78.55,
        "sell_px": 78.55 + net + 1.58,
        "gross": net + 1.58,
        "net": net,
        "net_bps": net / 78.55 * 10_000,
        "peak_net": net,
        "reason": None,
    }
    if event == "close":
        record |= {"reason": "converged", "duration_ms": ts - T0}
    return record


def wide(event: str, ts: int, bid: float = 91.6, ask: float = 136.8) -> dict[str, Any]:
    width = (ask - bid) / ((ask + bid) / 2) * 10_000
    return {
        "type": "signal",
        "kind": "wide",
        "event": event,
        "instrument": "XAG",
        "venue": "SHUIBEI",
        "ts": ts,
        "bid": bid,
        "ask": ask,
        "width_bps": width,
    }


def dashboard(
    venues: tuple[str, ...] = VENUES,
    windows: tuple[int, ...] = WINDOWS,
    rate_window_ms: int = 10_000,
    **venue_options: dict[str, Any],
) -> Dashboard:
    """A dashboard of a config with ``venues`` (in USD/oz; ``venue_options`` per venue)."""
    tables = {v: {"currency": "USD", "unit": "oz"} | venue_options.get(v, {}) for v in venues}
    view = MarketView(parse_config({"venues": tables}))
    return Dashboard(view, windows, rate_window_ms)


def _key(record: dict[str, Any]) -> str | None:
    """The record's key, as the worker writes it (docs/records.md)."""
    i = record.get("instrument")
    kind = record.get("type")
    if kind == "quote":
        return i if isinstance(i, str) else None
    if kind == "spread":
        return f"{i}|{record.get('a')}|{record.get('b')}"
    if kind == "basis":
        return f"{i}|{record.get('spot')}|{record.get('future')}"
    if kind == "signal":
        if record.get("kind") == "arb":
            return f"{i}|arb|{record.get('buy')}>{record.get('sell')}"
        if record.get("kind") == "basis":
            return f"{i}|basis|{record.get('spot')}>{record.get('future')}"
        return f"{i}|{record.get('kind')}|{record.get('venue')}"
    return None


def see(d: Dashboard, record: dict[str, Any], now_ms: int = NOW) -> None:
    """Hand ``record`` to the dashboard as the topic reader does (it passes JSON objects
    only: tests/gateway/test_topic_reader.py)."""
    topic = {"quote": "p.ticks", "fx": "p.ticks"}.get(record.get("type"), "p.outputs")
    d.observe(TopicRecord(topic, _key(record), record, orjson.dumps(record)), now_ms)


def rendered(d: Dashboard, now_ms: int = NOW, width: int = 120) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(d.render(now_ms))
    return console.export_text()


def venue_row(d: Dashboard, venue: str, now_ms: int = NOW) -> list[str]:
    """The cells of the venue's row in the Venues table (the only row whose first cell is it)."""
    rows = [line.split() for line in rendered(d, now_ms).splitlines()]
    matches = [cells for cells in rows if cells and cells[0] == venue]
    assert len(matches) == 1, rows
    return matches[0]


def test_summary_starts_with_every_configured_venue_and_signal_key_at_zero() -> None:
    assert dashboard().summary() == {
        "quotes": dict.fromkeys(VENUES, 0),
        "spreads": 0,
        "signals": ZERO_SIGNALS,
    }


def test_summary_counts_quotes_spreads_and_signals_exactly() -> None:
    d = dashboard()
    for i in range(3):
        see(d, quote("COMEX", 78.50, 78.55, T0 + i), NOW)
    see(d, quote("SHFE", 21980.0, 21990.0, T0), NOW)
    see(d, quote("MCX", 92000.0, 92100.0, T0), NOW)  # unconfigured: other
    see(d, spread("COMEX", "SHFE", -6.785, T0))
    see(d, spread("COMEX", "SHFE", -6.7, T0 + 1))
    see(d, arb("open", 5.12, T0 + 1000))
    see(d, arb("update", 5.5, T0 + 2000))
    see(d, arb("close", 0.1, T0 + 3000))
    see(d, wide("open", T0))
    see(d, {"type": "signal", "kind": "auction", "event": "start", "instrument": "XAG", "ts": T0})
    assert d.summary() == {
        "quotes": {"COMEX": 3, "LBMA": 0, "SGE": 0, "SHFE": 1, "SHUIBEI": 0},
        "spreads": 2,
        "signals": ZERO_SIGNALS
        | {"arb.open": 1, "arb.update": 1, "arb.close": 1, "wide.open": 1, "auction.start": 1},
    }
    assert d.other == 1


def test_fx_is_not_a_quote_and_duplicates_across_partitions_keep_the_latest() -> None:
    d = dashboard()
    for _ in range(8):  # one copy per partition of the ticks topic
        see(d, fx(7.1015, T0 + 5000), NOW)
    see(d, fx(6.9000, T0), NOW)  # an older partition's copy arrives late
    assert d.summary()["quotes"] == dict.fromkeys(VENUES, 0)
    assert d.other == 0
    text = rendered(d)
    assert "USDCNY 7.1015" in text
    assert "6.9000" not in text
    see(d, fx(7.2000, T0 + 6000), NOW)
    assert "USDCNY 7.2000" in rendered(d)


def test_arb_open_update_close_lifecycle_takes_net_from_the_latest_update() -> None:
    d = dashboard()
    see(d, quote("COMEX", 78.50, 78.55, T0 + 4000), NOW)
    see(d, arb("open", 5.12, T0 + 1000))
    see(d, arb("update", 5.50, T0 + 2000))
    see(d, arb("open", 0.80, T0 + 2000, buy="LBMA", sell="SGE"))
    assert "arb open 2 (best COMEX>SHFE +5.50 USD/oz)" in d.status_line(NOW)
    text = rendered(d)
    route_line = next(line for line in text.splitlines() if "COMEX>SHFE" in line)
    # net, peak and age = instrument clock (T0 + 4 s) - opened_ts (T0)
    assert route_line.split() == ["COMEX>SHFE", "XAG", "+5.50", "+700.2", "+5.50", "4.0s"]
    assert text.index("COMEX>SHFE") < text.index("LBMA>SGE")  # sorted by net, best first

    see(d, arb("close", 0.20, T0 + 3000))
    see(d, arb("close", 0.10, T0 + 3000, buy="LBMA", sell="SGE"))
    assert "arb open 0 |" in d.status_line(NOW)
    text = rendered(d)
    assert "COMEX>SHFE" not in text
    assert "none open" in text


def test_update_without_a_seen_open_still_counts_as_open() -> None:
    d = dashboard()  # the view started while the route was already open
    see(d, arb("update", 2.25, T0 + 9000))
    assert "arb open 1 (best COMEX>SHFE +2.25 USD/oz)" in d.status_line(NOW)


def test_wide_market_open_then_close_leaves_nothing_open() -> None:
    d = dashboard()
    see(d, wide("open", T0))
    assert "wide open 1" in d.status_line(NOW)
    assert "3958" in rendered(d)  # width_bps of 91.6 / 136.8
    see(d, wide("close", T0 + 500, bid=100.0, ask=101.0))
    assert "wide open 0" in d.status_line(NOW)
    assert "3958" not in rendered(d)


def test_tick_rate_counts_observations_in_the_last_window_of_wall_clock() -> None:
    d = dashboard()
    for i in range(20):  # spread over the last 9.5 s
        see(d, quote("COMEX", 78.50, 78.55, T0 + i), NOW - 9_500 + i * 500)
    see(d, quote("LBMA", 78.48, 78.56, T0), NOW - 20_000)  # long before the window
    assert venue_row(d, "COMEX")[2] == "2.0/s"
    assert "(2.0/s)" in d.status_line(NOW)
    assert venue_row(d, "LBMA")[2] == "0.0/s"
    # 1 s later the two oldest (NOW - 9.5 s, NOW - 9 s) have left the 10 s window
    assert venue_row(d, "COMEX", NOW + 1_000)[2] == "1.8/s"
    assert venue_row(d, "COMEX", NOW + 20_000)[2] == "0.0/s"


def test_tick_rate_memory_is_bounded_by_the_window_not_the_quote_count() -> None:
    d = dashboard(rate_window_ms=1_000)
    for i in range(50_000):  # 5 quotes per wall-clock ms
        see(d, quote("COMEX", 78.50, 78.55, T0 + i), NOW + i // 5)
    assert len(d._arrivals["COMEX"]) <= 1_001
    assert venue_row(d, "COMEX", NOW + 9_999)[2] == "5000.0/s"


def test_quote_age_on_the_instrument_clock_and_on_the_wall_clock() -> None:
    d = dashboard()
    see(d, quote("COMEX", 78.50, 78.55, T0, recv_ts=NOW - 300), NOW)
    see(d, quote("SHFE", 21980.0, 21990.0, T0 + 2_500), NOW)  # no recv_ts
    see(d, quote("SGE", 21950.0, 21970.0, T0 + 1_000, recv_ts=NOW - 1_200), NOW)
    # cells: venue quotes rate instrument bid ask age(instrument) [age(wall)] status
    assert venue_row(d, "COMEX") == [
        "COMEX", "1", "0.1/s", "XAG", "78.5", "78.55", "2.5s", "0.3s", "live"
    ]  # fmt: skip
    assert venue_row(d, "SHFE")[6:] == ["0.0s", "live"]  # wall age blank without recv_ts
    assert venue_row(d, "SGE")[6:] == ["1.5s", "1.2s", "live"]
    assert venue_row(d, "LBMA") == ["LBMA", "0", "-", "-", "-", "-", "-", "-", "stale"]
    # an older quote of another venue does not move the clock back
    see(d, quote("LBMA", 78.48, 78.56, T0 + 100), NOW)
    assert venue_row(d, "COMEX")[6] == "2.5s"


def test_malformed_records_never_raise_and_count_as_other() -> None:
    d = dashboard()
    bad_ticks: list[Any] = [
        {},
        {"type": "trade", "venue": "COMEX"},
        {"type": "quote", "venue": "COMEX", "instrument": "XAG", "bid": 78.5, "ts": T0},
        quote("COMEX", "78.50", 78.55, T0),  # type: ignore[arg-type]
        quote("COMEX", 78.50, float("nan"), T0),
        quote("COMEX", 78.50, 78.55, True),  # booleans are not timestamps
        quote("COMEX", 78.50, 78.55, T0) | {"instrument": ""},
        quote("COMEX", 78.50, 78.55, -1),
        {"type": "fx", "pair": "USDCNY", "bid": 7.1, "ts": T0},
    ]
    for record in bad_ticks:
        see(d, record)
    bad_spreads: list[Any] = [
        {"type": "signal"},
        spread("COMEX", "SHFE", -6.7, T0) | {"spread": None},
        spread("COMEX", "SHFE", -6.7, T0) | {"b": 7},
    ]
    for record in bad_spreads:
        see(d, record)
    bad_signals: list[Any] = [
        {"type": "spread"},
        {"type": "signal", "kind": "arb"},
        arb("open", 5.0, T0) | {"net": "5.0"},
        arb("update", 5.0, T0) | {"buy": None},
        wide("open", T0) | {"width_bps": None},
        wide("close", T0) | {"venue": 3},
    ]
    for record in bad_signals:
        see(d, record)
    assert d.other == len(bad_ticks) + len(bad_spreads) + len(bad_signals)
    assert d.summary() == {
        "quotes": dict.fromkeys(VENUES, 0),
        "spreads": 0,
        "signals": ZERO_SIGNALS,
    }
    rendered(d)  # and the view still renders
    assert f"other {d.other}" in d.status_line(NOW)


def test_unconfigured_venues_are_other_and_long_tables_are_cut_to_fit() -> None:
    d = dashboard()
    for i in range(1_000):
        see(d, quote(f"FAKE{i}", 1.0, 2.0, T0))
        see(d, spread("COMEX", f"FAKE{i}", 1.0, T0))
    assert d.summary()["quotes"] == dict.fromkeys(VENUES, 0)
    assert d.summary()["spreads"] == 1_000
    assert d.other == 1_000  # the quotes of venues outside the config
    assert "... 988 more" in rendered(d)  # 1,000 pairs, 12 rows shown
    assert MAX_KEYS >= 1_000  # (the view's bound: tests/streams/test_market_view.py)


def test_render_shows_spreads_routes_venues_and_z_scores() -> None:
    d = dashboard()
    see(d, quote("COMEX", 78.50, 78.55, T0 + 1_000, recv_ts=NOW - 50), NOW)
    see(d, quote("SHFE", 21980.0, 21990.0, T0 + 1_000), NOW)
    see(d, fx(7.1015, T0), NOW)
    see(d, spread("COMEX", "SHFE", -6.785, T0 + 1_000, z=-1.7))
    see(d, spread("COMEX", "LBMA", 0.05, T0, z=None))
    see(d, arb("open", 5.12, T0 + 1_000))
    see(d, wide("open", T0))
    text = rendered(d)
    assert "quotes 3" not in text  # fx is not a quote
    assert "quotes 2  spreads 2  signals 2" in text
    for venue in VENUES:
        assert venue in text
    assert "COMEX>SHFE" in text
    spread_line = next(line for line in text.splitlines() if "XAG COMEX/SHFE" in line)
    assert spread_line.split() == ["XAG", "COMEX/SHFE", "-6.785", "-795.3", "-1.70", "0.0s"]
    lbma_line = next(line for line in text.splitlines() if "XAG COMEX/LBMA" in line)
    assert lbma_line.split() == ["XAG", "COMEX/LBMA", "+0.050", "+6.4", "1.0s"]  # null z blank
    assert text.index("COMEX/LBMA") < text.index("COMEX/SHFE")
    assert "z 1m" in text and "z 5m" in text


def test_a_full_demo_view_fits_a_100x40_terminal() -> None:
    d = dashboard()
    for i, venue in enumerate(VENUES):
        see(d, quote(venue, 78.0 + i, 78.1 + i, T0 + i, recv_ts=NOW - 5), NOW)
    for i, a in enumerate(VENUES):
        for b in VENUES[i + 1 :]:
            see(d, spread(*sorted((a, b)), -1.23, T0))
    see(d, arb("open", 5.12, T0))
    see(d, arb("open", 1.2, T0, buy="LBMA", sell="SGE"))
    see(d, wide("open", T0))
    see(d, fx(7.1015, T0), NOW)
    lines = rendered(d, width=100).splitlines()
    assert len(lines) <= 40
    assert max(map(len, lines)) <= 100


def test_basis_section_and_session_column() -> None:
    """Market structure in the view: the latest basis per pair with its backwardation,
    and whether each venue with sessions is open on its instrument's clock."""
    t = int(datetime(2026, 2, 13, 7, 30, tzinfo=UTC).timestamp() * 1000)  # 15:30 Shanghai
    shanghai = {"timezone": "Asia/Shanghai", "sessions": ["09:00-15:00"]}
    d = dashboard(("COMEX", "SHFE"), (60_000,), SHFE=shanghai)
    assert "Basis" not in rendered(d)  # no basis pair seen yet: no section
    see(
        d,
        {"type": "quote", "venue": "SHFE", "instrument": "XAG", "bid": 1.0, "ask": 2.0, "ts": t},
        NOW,
    )
    see(
        d,
        {
            "type": "basis",
            "instrument": "XAG",
            "spot": "SGE",
            "future": "SHFE",
            "ts": t,
            "basis": -1.39,
            "basis_bps": -146.8,
            "days": 121.7,
            "carry": -0.044,
            "lease_rate": 0.088,
        },
    )
    see(
        d,
        {
            "type": "signal",
            "kind": "basis",
            "event": "open",
            "instrument": "XAG",
            "spot": "SGE",
            "future": "SHFE",
            "ts": t,
            "opened_ts": t - 60_000,
        },
    )
    text = rendered(d)
    assert "Basis (future - spot, USD/oz)" in text
    row = next(line for line in text.splitlines() if "SGE/SHFE" in line)
    assert "-1.390" in row and "-146.8" in row and "121.7" in row
    assert "+8.8%" in row and "-4.4%" in row and "open 60.0s" in row
    venue_row = next(line for line in text.splitlines() if line.strip().startswith("SHFE"))
    assert venue_row.rstrip().endswith("closed")  # 15:30 in Shanghai, after its session
    see(
        d,
        {
            "type": "signal",
            "kind": "basis",
            "event": "close",
            "instrument": "XAG",
            "spot": "SGE",
            "future": "SHFE",
            "ts": t,
            "reason": "closed",
        },
    )
    assert "open 60.0s" not in rendered(d)
    assert d.summary()["signals"]["basis.open"] == 1
    see(d, {"type": "basis", "instrument": "XAG"})  # malformed: counted, no crash
    assert d.other == 1


def test_delivery_section_shows_coverage_and_since_when_stress_is_open() -> None:
    d = dashboard(("COMEX",), (60_000,))
    assert "Delivery" not in rendered(d)  # no delivery signal yet: no section
    signal = {"type": "signal", "kind": "delivery", "instrument": "XAG", "venue": "COMEX",
              "registered": 102_000_000, "open_interest": 366_000_000}  # fmt: skip
    see(d,
        {"type": "quote", "venue": "COMEX", "instrument": "XAG", "bid": 1.0, "ask": 2.0,
         "ts": 90_000},
        NOW,
    )  # fmt: skip
    see(d, {**signal, "event": "open", "ts": 30_000, "coverage": 102 / 366})
    text = rendered(d)
    assert "Delivery stress (registered / open interest)" in text
    row = next(line for line in text.splitlines() if "XAG COMEX" in line)
    assert "27.9%" in row and "102,000,000" in row and "366,000,000" in row
    assert "open 60.0s" in row  # on the instrument clock (90 s) since the open (30 s)
    see(d, {**signal, "event": "close", "ts": 95_000, "coverage": 0.61})
    row = next(line for line in rendered(d).splitlines() if "XAG COMEX" in line)
    assert "61.0%" in row and row.rstrip().endswith("closed")
    assert d.summary()["signals"]["delivery.open"] == 1
    see(d, {"type": "signal", "kind": "delivery", "event": "open"})  # malformed
    assert d.other == 1


def test_a_halted_venue_and_the_last_level_crosses_are_shown() -> None:
    d = dashboard()
    see(d, quote("COMEX", 119.0, 119.2, T0))
    halt = {"type": "signal", "kind": "halt", "event": "open", "instrument": "XAG",
            "venue": "COMEX", "ts": T0 + 10, "opened_ts": T0 + 10, "note": None}  # fmt: skip
    see(d, halt)
    assert venue_row(d, "COMEX")[-1] == "halted"
    assert "Level crosses" not in rendered(d)  # none yet: no section
    cross = {"type": "signal", "kind": "level", "event": "cross", "instrument": "XAG",
             "venue": "COMEX", "name": "resistance-120", "ts": T0 + 20, "price": 120.0,
             "direction": "up", "mid": 120.31}  # fmt: skip
    see(d, cross)
    see(d, cross | {"name": "100", "price": 100.0, "direction": "down", "mid": 99.5, "ts": T0 + 30})
    lines = rendered(d).splitlines()
    rows = [line.split() for line in lines if "resistance-120" in line or line.startswith(" 100")]
    assert [r[:4] for r in rows] == [
        ["100", "XAG", "COMEX", "↓"],
        ["resistance-120", "XAG", "COMEX", "↑"],
    ]
    assert d.summary()["signals"] | {} == ZERO_SIGNALS | {"halt.open": 1, "level.cross": 2}
    # the one-line status (a log, a pipe) says it too
    assert "| halted COMEX/XAG | last cross 100 down (COMEX)" in d.status_line(T0 + 30)
    see(d, halt | {"event": "close", "ts": T0 + 40, "duration_ms": 30})
    assert venue_row(d, "COMEX")[-1] != "halted"
    assert "halted" not in d.status_line(T0 + 40)


def test_alerts_show_in_the_table_the_status_line_and_the_summary() -> None:
    def held(name: str, severity: str, inhibited: bool = False, **labels: str) -> dict[str, Any]:
        return {
            "labels": {"alertname": name, "severity": severity, **labels},
            "annotations": {"summary": f"{name} summary"},
            "startsAt": "2026-12-07T08:00:00Z",
            "status": {"inhibitedBy": ["k"] if inhibited else []},
        }

    d = dashboard()
    assert "alerts" not in d.summary() and "alerts" not in d.status_line(NOW)
    first = AlertsReport(
        "http://am:9093",
        True,
        parse_alerts(
            [
                held("ArbstreamQuoteStale", "warning", True, venue="SGE"),
                held("ArbstreamFeedKafkaDisconnected", "critical", feed="sge"),
                held("ArbstreamArbOpenTooLong", "warning", route="COMEX>SGE"),
            ]
        ),
        checked_at=1.0,
    )
    d.show_alerts(first)
    assert d.status_line(NOW).endswith(
        "| alerts firing 2 (ArbOpenTooLong FeedKafkaDisconnected)"
    )  # the inhibited one is not firing
    text = rendered(d, width=160)
    assert "Alerts (Alertmanager http://am:9093)" in text
    rows = [
        line.split()[:2]
        for line in text.splitlines()
        if line.split()[:1] in (["critical"], ["warning"])
    ]
    assert rows == [
        ["critical", "FeedKafkaDisconnected"],
        ["warning", "ArbOpenTooLong"],
        ["warning", "QuoteStale"],
    ], text
    assert "(inhibited) ArbstreamQuoteStale summary" in text
    # the Kafka alert resolves; then the Alertmanager stops answering
    second = with_resolved(first, replace(first, alerts=first.alerts[1:], checked_at=2.0))
    d.show_alerts(second)
    assert d.status_line(NOW).endswith(
        "| alerts firing 1 (ArbOpenTooLong), resolved lately 1 (FeedKafkaDisconnected)"
    )
    assert "(resolved) ArbstreamFeedKafkaDisconnected summary" in rendered(d, width=160)
    d.show_alerts(with_resolved(second, AlertsReport("http://am:9093", False, error="refused")))
    assert "alerts unknown (Alertmanager: refused; 1 when last seen)" in d.status_line(NOW)
    assert "the Alertmanager does not answer (refused); as last seen" in rendered(d, width=160)
    d.notified = {"notified": {"arbstream-page firing": 1}, "notified_names": {}}
    assert d.summary()["alerts"] == {
        "seen": ["ArbstreamArbOpenTooLong", "ArbstreamFeedKafkaDisconnected"],
        "firing_at_end": ["ArbstreamArbOpenTooLong route=COMEX>SGE"],
        "notified": {"arbstream-page firing": 1},
        "notified_names": {},
    }
