"""Every protocol parser on recorded frames (tests/feeds/frames/), malformed ones included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from arbstream.feeds.errors import BadFrameError, FeedAuthError
from arbstream.feeds.protocols import Parsed, make_protocol
from arbstream.feeds.settings import FeedSettings

FRAMES = Path(__file__).parent / "frames"

SETTINGS = {
    "binance": FeedSettings(
        protocol="binance", url="wss://x/ws", venue="BINANCE", symbols={"XAGUSDT": "XAG"}
    ),
    "hyperliquid": FeedSettings(
        protocol="hyperliquid", url="wss://x/ws", venue="HL", symbols={"xyz:SILVER": "XAG"}
    ),
    "massive": FeedSettings(
        protocol="massive",
        url="wss://x/forex",
        symbols={"USD/CNY": "USDCNY", "USD/INR": "USDINR"},
        api_key_env="MASSIVE_API_KEY",
    ),
    "native": FeedSettings(
        protocol="native", url="ws://x/shfe", venue="SHFE", symbols={"ag": "XAG"}
    ),
}


def _frames(name: str) -> tuple[list[str], list[str]]:
    """(good frames, malformed frames) of a recording; '#' lines are comments."""
    good: list[str] = []
    bad: list[str] = []
    target = good
    for line in (FRAMES / f"{name}.txt").read_text().splitlines():
        if line.startswith("# malformed"):
            target = bad
        elif line and not line.startswith("#"):
            target.append(line)
    return good, bad


def _parse_all(name: str, frames: list[str]) -> list[Parsed]:
    protocol = make_protocol(SETTINGS[name], api_key="k")
    return [protocol.parse(frame) for frame in frames]


def _records(parsed: list[Parsed]) -> list[dict[str, Any]]:
    return [r for p in parsed for r in p.records]


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_malformed_frame_is_a_bad_frame_error(name: str) -> None:
    protocol = make_protocol(SETTINGS[name], api_key="k")
    _, bad = _frames(name)
    assert len(bad) >= 6
    for frame in bad:
        with pytest.raises(BadFrameError):
            protocol.parse(frame)
        # bytes frames (binary WebSocket messages) behave the same
        with pytest.raises(BadFrameError):
            protocol.parse(frame.encode())


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_records_are_contract_json(name: str) -> None:
    good, _ = _frames(name)
    for record in _records(_parse_all(name, good)):
        assert record["type"] in ("quote", "fx")
        assert type(record["ts"]) is int and record["ts"] > 1_700_000_000_000
        assert type(record["bid"]) is float and type(record["ask"]) is float
        assert orjson.loads(orjson.dumps(record)) == record


def test_binance_book_ticker() -> None:
    good, _ = _frames("binance")
    parsed = _parse_all("binance", good)
    assert parsed[0].records == [] and not parsed[0].bad  # the SUBSCRIBE reply
    records = _records(parsed)
    assert records[0] == {
        "type": "quote",
        "venue": "BINANCE",
        "instrument": "XAG",
        "bid": 78.51,
        "ask": 78.55,
        "ts": 1769990400010,  # T, the transaction time
        "bid_size": 31.21,
        "ask_size": 40.66,
        "seq": 400900217,
    }
    assert [r["seq"] for r in records] == [400900217, 400900219, 400900230, 400900231]
    assert records[2]["bid"] == 78.49  # combined-stream envelope unwrapped
    assert records[3]["ts"] == 1769990400500  # no T: E


def test_binance_subscribes_to_every_symbol() -> None:
    settings = SETTINGS["binance"].model_copy(
        update={"symbols": {"XAGUSDT": "XAG", "XAUUSDT": "XAU"}}
    )
    (subscribe,) = make_protocol(settings).on_connect()
    assert orjson.loads(subscribe) == {
        "method": "SUBSCRIBE",
        "params": ["xagusdt@bookTicker", "xauusdt@bookTicker", "!contractInfo"],
        "id": 1,
    }


def test_binance_contract_status_becomes_a_status_record() -> None:
    protocol = make_protocol(SETTINGS["binance"])
    settling = {"e": "contractInfo", "E": 1769781600000, "s": "XAGUSDT", "ps": "XAGUSDT",
                "ct": "PERPETUAL", "cs": "SETTLING"}  # fmt: skip
    (halted,) = protocol.parse(orjson.dumps(settling)).records
    assert halted == {
        "type": "status", "venue": "BINANCE", "instrument": "XAG", "status": "halted",
        "ts": 1769781600000, "note": "contract status SETTLING",
    }  # fmt: skip
    wrapped = {"stream": "!contractInfo", "data": settling | {"cs": "TRADING", "E": 1769781660000}}
    (trading,) = protocol.parse(orjson.dumps(wrapped)).records
    assert (trading["status"], trading["ts"], "note" in trading) == (
        "trading",
        1769781660000,
        False,
    )
    # every contract's changes arrive: another symbol's is no concern, and no bad frame
    assert protocol.parse(orjson.dumps(settling | {"s": "BTCUSDT"})) == Parsed()
    with pytest.raises(BadFrameError, match="cs: expected a contract status"):
        protocol.parse(orjson.dumps(settling | {"cs": None}))


def test_hyperliquid_bbo_and_one_sided_books() -> None:
    good, _ = _frames("hyperliquid")
    parsed = _parse_all("hyperliquid", good)
    records = _records(parsed)
    assert [(r["bid"], r["ask"], r["ts"]) for r in records] == [
        (78.51, 78.55, 1769990400000),
        (78.52, 78.56, 1769990400350),
    ]
    assert records[0]["venue"] == "HL" and records[0]["instrument"] == "XAG"
    assert records[0]["bid_size"] == 12.5
    # a null side is no quote, and no bad frame; pong and subscription replies are quiet
    assert all(not p.bad for p in parsed)
    protocol = make_protocol(SETTINGS["hyperliquid"])
    assert protocol.keepalive == '{"method":"ping"}'
    assert orjson.loads(protocol.on_connect()[0]) == {
        "method": "subscribe",
        "subscription": {"type": "bbo", "coin": "xyz:SILVER"},
    }


def test_massive_forex_quotes_become_fx_records() -> None:
    good, _ = _frames("massive")
    parsed = _parse_all("massive", good)
    records = _records(parsed)
    assert records[0] == {
        "type": "fx",
        "pair": "USDCNY",
        "bid": 7.1012,
        "ask": 7.1018,
        "ts": 1769990400000,
    }
    assert [r["pair"] for r in records] == ["USDCNY", "USDCNY", "USDINR", "USDCNY"]
    # an array with one unknown pair keeps the good event and reports the other
    assert len(parsed[-1].records) == 1 and parsed[-1].bad == ["unknown pair 'EUR/USD'"]


def test_massive_authenticates_with_the_key_then_subscribes() -> None:
    auth, subscribe = make_protocol(SETTINGS["massive"], api_key="s3cret").on_connect()
    assert orjson.loads(auth) == {"action": "auth", "params": "s3cret"}
    assert orjson.loads(subscribe) == {"action": "subscribe", "params": "C.USD/CNY,C.USD/INR"}


def test_massive_auth_failure_is_fatal() -> None:
    frame = '[{"ev":"status","status":"auth_failed","message":"authentication failed"}]'
    with pytest.raises(FeedAuthError, match="authentication failed"):
        make_protocol(SETTINGS["massive"], api_key="wrong").parse(frame)


def test_native_stamps_the_venue_maps_symbols_and_leaves_validation_to_the_worker() -> None:
    good, _ = _frames("native")
    records = _records(_parse_all("native", good))
    assert [r["type"] for r in records] == ["quote", "quote", "fx", "quote", "quote", "quote"]
    quotes = [r for r in records if r["type"] == "quote"]
    assert {r["venue"] for r in quotes} == {"SHFE"} and {r["instrument"] for r in quotes} == {"XAG"}
    assert quotes[1]["last"] == 21990.0  # extra fields pass through
    assert quotes[-1]["bid"] > quotes[-1]["ask"]  # crossed: the worker rejects it to the DLQ


def test_native_without_symbol_map_passes_names_through() -> None:
    settings = SETTINGS["native"].model_copy(update={"symbols": {}})
    parsed = make_protocol(settings).parse(
        '{"type":"quote","instrument":"au","bid":1,"ask":2,"ts":1}'
    )
    assert parsed.records[0]["instrument"] == "au" and parsed.records[0]["venue"] == "SHFE"


def test_native_carries_status_records_with_the_venue_stamped() -> None:
    parsed = make_protocol(SETTINGS["native"]).parse(
        '{"type":"status","instrument":"ag","status":"halted","ts":5,"note":"limit down"}'
    )
    assert parsed.records == [{"type": "status", "instrument": "XAG", "status": "halted",
                               "ts": 5, "note": "limit down", "venue": "SHFE"}]  # fmt: skip


def test_native_carries_stock_reports_and_quote_sizes() -> None:
    settings = SETTINGS["native"].model_copy(update={"symbols": {}})
    parsed = make_protocol(settings).parse(
        '[{"type":"stock","instrument":"XAG","registered":102000000,'
        '"open_interest":366000000,"ts":5},'
        '{"type":"quote","instrument":"XAG","bid":1,"ask":2,"ts":6,"bid_size":3,"ask_size":4},'
        '{"type":"stock","registered":1}]'
    )
    stock, quote = parsed.records
    assert stock["type"] == "stock" and stock["venue"] == "SHFE"
    assert (stock["registered"], stock["open_interest"]) == (102000000, 366000000)
    assert (quote["bid_size"], quote["ask_size"]) == (3, 4)
    assert parsed.bad == ["stock without an instrument: {'type': 'stock', 'registered': 1}"]
