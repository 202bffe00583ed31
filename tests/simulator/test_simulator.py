"""The venue simulator: encoders against the real parsers, routing, pacing, and real
WebSocket clients (our own connection loop among them) against the served venues."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from arbstream.config import Config, parse_config
from arbstream.feeds.connection import FeedConnection
from arbstream.feeds.errors import BadFrameError, FeedAuthError, FeedError
from arbstream.feeds.protocols import make_protocol
from arbstream.feeds.settings import FeedSettings
from arbstream.simulator.frames import Router, garble, make_venue
from arbstream.simulator.server import (
    SimulatorSettings,
    SimulatorStats,
    run_simulator,
    serve_scenario,
)
from arbstream.simulator.timeline import GeneratedScenario, ScenarioFile, pace
from helpers.kafka import free_port, scaled

T0 = 1_769_990_400_000
T = TypeVar("T")

VENUES = {
    "BIN": {"currency": "USD", "unit": "oz"},
    "HL": {"currency": "USD", "unit": "oz"},
    "COMEX": {"currency": "USD", "unit": "oz"},
    "SHFE": {"currency": "CNY", "unit": "kg", "vat": 0.13},
    "MCX": {"currency": "INR", "unit": "kg"},
}
FEEDS: dict[str, dict[str, Any]] = {
    "bin": {"protocol": "binance", "venue": "BIN", "symbols": {"XAGUSDT": "XAG"}},
    "hl": {
        "protocol": "hyperliquid",
        "venue": "HL",
        "symbols": {"xyz:SILVER": "XAG", "xyz:GOLD": "XAU"},
    },
    "shfe": {"protocol": "native", "venue": "SHFE", "symbols": {"ag": "XAG"}},
    "comex": {"protocol": "native", "venue": "COMEX"},
    "fx": {"protocol": "massive", "symbols": {"USD/CNY": "USDCNY"}, "api_key_env": "FX_KEY"},
}


def _config(*names: str, url: str = "ws://127.0.0.1:{port}/ws") -> Config:
    feeds = {n: {**FEEDS[n], "url": url.format(port=free_port())} for n in names}
    return parse_config({"venues": VENUES, "feeds": feeds})


def _quote(venue: str, i: int, instrument: str = "XAG", **extra: Any) -> dict[str, Any]:
    bid = round(78.0 + 0.01 * i, 3)
    return {
        "type": "quote",
        "venue": venue,
        "instrument": instrument,
        "bid": bid,
        "ask": round(bid + 0.04, 3),
        "ts": T0 + 100 * i,
        **extra,
    }


def _fx(i: int, pair: str = "USDCNY") -> dict[str, Any]:
    return {"type": "fx", "pair": pair, "bid": 7.1012 + i / 1e4, "ask": 7.1018 + i / 1e4, "ts": T0}


def _carried(record: dict[str, Any], protocol: str) -> dict[str, Any]:
    """What a protocol's frames carry of a record, as its parser reports it."""
    if protocol == "massive":
        return {k: record[k] for k in ("type", "pair", "bid", "ask", "ts")}
    out = {k: record[k] for k in ("type", "venue", "instrument", "bid", "ask", "ts")}
    if protocol in ("binance", "hyperliquid"):
        out["bid_size"] = record.get("bid_size", 1.0)
        out["ask_size"] = record.get("ask_size", 1.0)
    return out


def _without(records: Iterable[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in keys} for r in records]


# --- encoders: the inverse of the parsers ------------------------------------------


ROUND_TRIP: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "binance": (
        "bin",
        [
            _quote("BIN", 1, bid_size=31.21, ask_size=40.66),
            _quote("BIN", 2),
            {**_quote("BIN", 3), "bid": 0.1 + 0.2, "ask": 1e-7 + 0.4},
            {**_quote("BIN", 4), "bid": 78, "ask": 79},  # integers read back as floats
        ],
    ),
    "hyperliquid": (
        "hl",
        [_quote("HL", 1, bid_size=12.5, ask_size=4.0), _quote("HL", 2, "XAU")],
    ),
    "native": (
        "shfe",
        [_quote("SHFE", 1, last=21985.0), _quote("SHFE", 2), _fx(3), _quote("SHFE", 4)],
    ),
    "massive": ("fx", [_fx(1), _fx(2), {**_fx(3), "bid": 7, "ask": 7.5}]),
}


@pytest.mark.parametrize("protocol", sorted(ROUND_TRIP))
def test_every_encoder_round_trips_through_the_real_parser(protocol: str) -> None:
    feed, records = ROUND_TRIP[protocol]
    settings = FeedSettings(**FEEDS[feed], url="ws://127.0.0.1:1/ws")
    venue, parser = make_venue(settings), make_protocol(settings, api_key="k")
    frames = [venue.encode(r) for r in records]
    parsed = [r for f in frames for r in parser.parse(f.text).records]
    if protocol == "native":
        # the contract record itself, numbered per stream, instrument name mapped back
        assert _without(parsed, "seq") == records
        assert [r["seq"] for r in parsed] == [1, 2, 1, 3]
        assert orjson.loads(frames[0].text)["instrument"] == "ag"
        return
    assert _without(parsed, "seq") == [_carried(r, protocol) for r in records]
    assert all(type(r["bid"]) is float and type(r["ask"]) is float for r in parsed)
    if protocol == "binance":
        assert [r["seq"] for r in parsed] == [1_000_000, 1_000_001, 1_000_002, 1_000_003]
    # garbled frames are bad frames for the client
    for frame in frames:
        with pytest.raises(BadFrameError):
            parser.parse(garble(frame.text))


@given(st.floats(min_value=1e-9, max_value=1e12), st.floats(min_value=1e-9, max_value=1e12))
def test_decimal_string_prices_read_back_exactly(bid: float, ask: float) -> None:
    for feed in ("bin", "hl"):
        settings = FeedSettings(**FEEDS[feed], url="ws://127.0.0.1:1/ws")
        record = {**_quote(settings.venue or "", 0), "bid": bid, "ask": ask}
        (back,) = make_protocol(settings).parse(make_venue(settings).encode(record).text).records
        assert (back["bid"], back["ask"]) == (bid, ask)


def test_records_a_protocol_cannot_carry_are_refused() -> None:
    settings = FeedSettings(**FEEDS["bin"], url="ws://127.0.0.1:1/ws")
    venue = make_venue(settings)
    for bad in ({"bid": "x"}, {"ask": float("nan")}, {"ts": -1}, {"ts": 1.5}, {"bid": True}):
        with pytest.raises(ValueError):
            venue.encode({**_quote("BIN", 1), **bad})


@pytest.mark.parametrize("feed", sorted(FEEDS))
def test_the_clients_opening_frames_get_the_venues_answers(feed: str) -> None:
    """What our client sends first subscribes it; every reply is quiet control traffic."""
    settings = FeedSettings(**FEEDS[feed], url="ws://127.0.0.1:1/ws")
    venue, client = make_venue(settings), make_protocol(settings, api_key="k")
    session = venue.new_session()
    replies = venue.greeting()
    for frame in client.on_connect():
        replies += venue.answer(session, frame)
    if client.keepalive:
        assert venue.answer(session, client.keepalive) == ['{"channel":"pong"}']
    for reply in replies:
        assert client.parse(reply).records == []
    assert session.streaming
    assert all(session.wants(s.upper() if feed == "bin" else s) for s in settings.symbols)
    assert not session.wants("OTHER") or settings.protocol == "native"


# --- routing ---------------------------------------------------------------------


def test_routing_serves_fx_once_and_counts_what_no_feed_serves() -> None:
    router = Router(_config(*FEEDS).feeds)
    assert router.route(_quote("BIN", 1)) == ("bin",)
    assert router.route(_quote("BIN", 1, "XAU")) == ()  # binance maps only XAGUSDT
    assert router.route(_quote("HL", 1, "XAU")) == ("hl",)
    assert router.route(_quote("SHFE", 1)) == ("shfe",)
    assert router.route(_quote("COMEX", 1, "ANYTHING")) == ("comex",)  # no map: all names
    assert router.route(_fx(1)) == ("fx",)  # the massive feed maps it
    assert router.route(_fx(1, "USDINR")) == ("comex",)  # else the first native feed by name
    assert router.route(_quote("LBMA", 1)) == ()
    assert router.route(_quote("LBMA", 2)) == ()
    assert router.route(_quote("MCX", 1)) == ()
    for junk in ({"type": "trade", "venue": "BIN"}, [1, 2, 3], b"{not json", {"type": "quote"}):
        assert router.route(junk) == ()
    assert router.unserved == {"venue BIN": 1, "venue LBMA": 2, "venue MCX": 1}
    assert router.not_records == 4
    assert len(router.warnings) == 3  # once per venue
    # with no massive feed and no native feed, fx is not served
    assert Router(_config("bin").feeds).route(_fx(1)) == ()


# --- the timeline ------------------------------------------------------------------


def test_pacing_scales_event_time_and_never_goes_back() -> None:
    values = [
        {"ts": T0},
        {"ts": T0 + 1000},
        "not a record",
        {"ts": T0 + 500},  # late: sent at once, no negative sleep
        {"ts": T0 + 3000},
    ]
    offsets = [offset for offset, _ in pace(values, speed=2.0)]
    assert offsets == [0.0, 0.5, 0.5, 0.5, 1.5]
    assert [v for _, v in pace(values)] == values
    with pytest.raises(ValueError):
        next(pace(values, speed=0))


def test_a_quiet_stretch_lasts_at_most_max_gap_in_wall_time() -> None:
    """A weekend or a holiday in a scenario: the records keep their ts, and the wait
    before the first record after it is at most ``max_gap_s``."""
    values = [
        {"ts": T0},
        {"ts": T0 + 1000},
        {"ts": T0 + 1000 + 7 * 86_400_000},  # a week later
        {"ts": T0 + 2000},  # late: at once
        {"ts": T0 + 1500 + 7 * 86_400_000},
    ]
    offsets = [offset for offset, _ in pace(values, speed=2.0, max_gap_s=3.0)]
    assert offsets == [0.0, 0.5, 3.5, 3.5, 3.75]
    assert [v for _, v in pace(values, max_gap_s=3.0)] == values
    # gaps below the cap are as due
    assert [o for o, _ in pace(values[:2], speed=2.0, max_gap_s=3.0)] == [0.0, 0.5]
    with pytest.raises(ValueError):
        next(pace(values, max_gap_s=0))


def test_a_looped_file_moves_forward_in_event_time(tmp_path: Path) -> None:
    lines = [_quote("BIN", 0), _quote("BIN", 30), _quote("BIN", 10)]  # span 3000 ms
    path = tmp_path / "ticks.jsonl"
    path.write_bytes(b"\n".join([*map(orjson.dumps, lines), b"", b"{not json"]) + b"\n")
    once = list(ScenarioFile(path))
    assert once == [*lines, b"{not json"]
    looped = ScenarioFile(path, loop=True)
    three = list(itertools.islice(looped, 12))
    assert looped.pass_number == 2
    ts = [v["ts"] for v in three if isinstance(v, dict)]
    assert ts[3:6] == [t + 4000 for t in ts[:3]] and ts[6:] == [t + 8000 for t in ts[:3]]
    assert min(ts[3:6]) > max(ts[:3]) and min(ts[6:]) > max(ts[3:6])
    assert three[0] == lines[0]  # the first pass keeps the file's own values
    with pytest.raises(FeedError, match=r"missing\.jsonl"):
        ScenarioFile(tmp_path / "missing.jsonl")


def test_the_generated_scenario_starts_when_iterated() -> None:
    config = _config("comex", "fx")
    calls: list[int] = []

    def clock() -> int:
        calls.append(T0)
        return T0

    scenario = GeneratedScenario(config, seed=3, clock_ms=clock)
    assert calls == []
    first = list(itertools.islice(scenario, 20))
    assert calls == [T0] and first[0]["ts"] >= T0
    assert {r["type"] for r in first} == {"quote", "fx"}


# --- real connections --------------------------------------------------------------


def _url(config: Config, feed: str) -> str:
    return config.feeds[feed].url


async def _connect(url: str) -> ClientConnection:
    """Connect once the simulator listens (it is started concurrently)."""
    deadline = time.monotonic() + scaled(5)
    while True:
        try:
            return await connect(url, open_timeout=scaled(5))
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


async def _with_simulator(
    config: Config,
    source: Iterable[Any],
    settings: SimulatorSettings,
    client: Callable[[asyncio.Event], Awaitable[T]],
) -> tuple[SimulatorStats, T]:
    """Run the simulator and a client side by side; the client may set stop."""
    stop = asyncio.Event()
    simulator = asyncio.create_task(serve_scenario(config, source, settings, stop))
    try:
        result = await asyncio.wait_for(client(stop), scaled(10))
    finally:
        stop.set()
    stats = await asyncio.wait_for(simulator, scaled(10))
    return stats, result


async def _messages(ws: ClientConnection) -> list[tuple[float, str]]:
    """Every text frame with its arrival time, until the server closes."""
    got: list[tuple[float, str]] = []
    try:
        async for message in ws:
            got.append((time.monotonic(), str(message)))
    except ConnectionClosed:
        pass
    return got


def _ticking(venue: str, every_ms: int = 10) -> Iterator[dict[str, Any]]:
    """An endless quote stream, for the fault tests."""
    for i in itertools.count():
        yield {**_quote(venue, i), "ts": T0 + every_ms * i}


def test_binance_client_gets_the_quotes_in_order_at_pace(caplog: pytest.LogCaptureFixture) -> None:
    config = _config("bin")
    records = [_quote("BIN", i, bid_size=float(i + 1)) for i in range(21)]  # 2 s of events
    parser = make_protocol(config.feeds["bin"])

    async def client(stop: asyncio.Event) -> tuple[float, list[tuple[float, str]]]:
        async with await _connect(_url(config, "bin")) as ws:
            await asyncio.sleep(0.3)  # connected, not yet subscribed: the clock must wait
            subscribed = time.monotonic()
            await ws.send(parser.on_connect()[0])
            assert orjson.loads(await ws.recv()) == {"result": None, "id": 1}
            return subscribed, await _messages(ws)

    caplog.set_level(logging.INFO, logger="simulator")
    settings = SimulatorSettings(speed=2.0, wait_for_clients_s=5)
    stats, (subscribed, got) = asyncio.run(_with_simulator(config, records, settings, client))
    parsed = [r for _, text in got for r in parser.parse(text).records]
    assert _without(parsed, "seq") == [_carried(r, "binance") for r in records]
    assert [r["seq"] for r in parsed] == list(range(1_000_000, 1_000_021))
    assert got[0][0] > subscribed  # nothing was sent before the client subscribed
    duration = got[-1][0] - got[0][0]
    assert 0.85 < duration < scaled(1.5), duration  # 2 s of event time at speed 2
    assert stats.done and stats.frames == 21 and stats.event_ts == records[-1]["ts"]
    text = caplog.text
    assert "simulator serving 1 feeds: bin=ws://127.0.0.1:" in text
    assert "scenario done: 21 frames" in text


def test_a_weekend_in_the_scenario_passes_in_max_gap_seconds() -> None:
    """Two quotes a day apart at speed 1: with max_gap_s 0.5 the second comes half a
    second after the first, with its own ts."""
    config = _config("comex")
    records = [_quote("COMEX", 0), {**_quote("COMEX", 1), "ts": T0 + 86_400_000}]

    async def client(stop: asyncio.Event) -> list[tuple[float, str]]:
        async with await _connect(_url(config, "comex")) as ws:  # native: streams at once
            return await _messages(ws)

    settings = SimulatorSettings(wait_for_clients_s=5, max_gap_s=0.5)
    stats, got = asyncio.run(_with_simulator(config, records, settings, client))
    assert [orjson.loads(text)["ts"] for _, text in got] == [T0, T0 + 86_400_000]
    assert 0.4 < got[1][0] - got[0][0] < scaled(1.5)
    assert stats.done


def test_massive_authenticates_and_streams_subscribed_pairs_only() -> None:
    config = _config("fx", "comex")
    records = [{**_fx(i), "ts": T0 + 50 * i} for i in range(8)]
    records.insert(3, _fx(0, "USDINR"))  # served by the native feed, not by massive
    settings_fx = config.feeds["fx"]

    async def session(key: str) -> list[str]:
        async with await _connect(_url(config, "fx")) as ws:
            assert orjson.loads(await ws.recv())[0]["status"] == "connected"
            for frame in make_protocol(settings_fx, api_key=key).on_connect():
                await ws.send(frame)
            return [text for _, text in await _messages(ws)]

    async def clients(stop: asyncio.Event) -> tuple[list[str], list[str]]:
        native = await _connect(_url(config, "comex"))  # every feed needs a client
        refused, good = await asyncio.gather(session(""), session("secret"))
        await native.close()
        return refused, good

    settings = SimulatorSettings(wait_for_clients_s=5, speed=2.0)
    _, (refused, good) = asyncio.run(_with_simulator(config, records, settings, clients))
    assert orjson.loads(refused[0])[0]["status"] == "auth_failed"
    with pytest.raises(FeedAuthError):
        make_protocol(settings_fx).parse(refused[0])
    assert len(refused) == 2  # no data, just auth_failed and the refused subscription
    assert orjson.loads(refused[1])[0] == {
        "ev": "status",
        "status": "error",
        "message": "not authorized",
    }
    statuses = [orjson.loads(t)[0]["status"] for t in good[:2]]
    assert statuses == ["auth_success", "success"]
    parser = make_protocol(settings_fx, api_key="secret")
    parsed = [r for text in good[2:] for r in parser.parse(text).records]
    assert parsed == [r for r in records if r["pair"] == "USDCNY"]


def test_hyperliquid_answers_pings_and_streams_subscribed_coins() -> None:
    config = _config("hl")
    records = [_quote("HL", i, "XAG" if i % 2 else "XAU") for i in range(10)]
    settings_hl = config.feeds["hl"]

    async def client(stop: asyncio.Event) -> list[str]:
        async with await _connect(_url(config, "hl")) as ws:
            await ws.send('{"method":"ping"}')
            assert orjson.loads(await ws.recv()) == {"channel": "pong"}
            await ws.send(make_protocol(settings_hl).on_connect()[0])  # xyz:SILVER only
            answer = orjson.loads(await ws.recv())
            assert answer["channel"] == "subscriptionResponse"
            return [text for _, text in await _messages(ws)]

    settings = SimulatorSettings(wait_for_clients_s=5, speed=20.0)
    _, got = asyncio.run(_with_simulator(config, records, settings, client))
    parsed = [r for text in got for r in make_protocol(settings_hl).parse(text).records]
    assert parsed == [_carried(r, "hyperliquid") for r in records if r["instrument"] == "XAG"]


def test_drop_every_aborts_connections_and_the_client_can_come_back() -> None:
    config = _config("comex")

    async def client(stop: asyncio.Event) -> tuple[float, list[int]]:
        ws = await _connect(_url(config, "comex"))  # native: streams right away
        started = time.monotonic()
        with pytest.raises(ConnectionClosedError):  # aborted: no close frame
            async for _ in ws:
                pass
        lived = time.monotonic() - started
        async with await _connect(_url(config, "comex")) as again:
            seqs = [orjson.loads(await again.recv())["seq"] for _ in range(3)]
        stop.set()
        return lived, seqs

    settings = SimulatorSettings(drop_every_s=0.4, wait_for_clients_s=5)
    stats, (lived, seqs) = asyncio.run(_with_simulator(config, _ticking("COMEX"), settings, client))
    assert 0.2 < lived < scaled(1.0)
    assert seqs[0] > 5 and seqs == list(range(seqs[0], seqs[0] + 3))  # missed while away
    assert stats.feeds["comex"].dropped_clients >= 1 and not stats.done


def test_bad_every_adds_garbled_frames_the_parser_rejects() -> None:
    config = _config("bin")
    parser = make_protocol(config.feeds["bin"])

    async def client(stop: asyncio.Event) -> list[str]:
        async with await _connect(_url(config, "bin")) as ws:
            await ws.send(parser.on_connect()[0])
            await ws.recv()  # the SUBSCRIBE answer
            return [text for _, text in await _messages(ws)]

    records = [_quote("BIN", i) for i in range(9)]
    settings = SimulatorSettings(bad_every=3, speed=100.0, wait_for_clients_s=5)
    _, got = asyncio.run(_with_simulator(config, records, settings, client))
    bad = []
    for text in got:
        try:
            parser.parse(text)
        except BadFrameError:
            bad.append(text)
    assert len(got) == 12 and len(bad) == 3
    assert [got.index(b) for b in bad] == [3, 7, 11]  # after every third frame


def test_a_stalled_venue_loses_the_frames_due_meanwhile() -> None:
    config = _config("comex")

    async def client(stop: asyncio.Event) -> list[tuple[float, str]]:
        ws = await _connect(_url(config, "comex"))
        got: list[tuple[float, str]] = []
        async with ws:
            deadline = time.monotonic() + 0.9
            while time.monotonic() < deadline:
                got.append((time.monotonic(), str(await ws.recv())))
        stop.set()
        return got

    settings = SimulatorSettings(stall_every_s=0.4, stall_for_s=0.25, wait_for_clients_s=5)
    stats, got = asyncio.run(_with_simulator(config, _ticking("COMEX"), settings, client))
    pauses = [b[0] - a[0] for a, b in itertools.pairwise(got)]
    assert max(pauses) > 0.2  # silence while stalled, the connection stays open
    seqs = [orjson.loads(text)["seq"] for _, text in got]
    assert any(b - a > 10 for a, b in itertools.pairwise(seqs))  # those frames are gone
    assert stats.feeds["comex"].lost > 10


def test_our_feed_connections_read_every_protocol_back() -> None:
    """``arbstream feed``'s connection loop, pointed at the simulator, gets the scenario."""
    config = _config("bin", "hl", "shfe", "fx")
    records: list[dict[str, Any]] = [_fx(0)]
    for i in range(1, 13):
        records += [_quote("BIN", i), _quote("HL", i), _quote("SHFE", i), {**_fx(i), "ts": T0}]
    received: dict[str, list[dict[str, Any]]] = {name: [] for name in config.feeds}

    async def main() -> SimulatorStats:
        stop = asyncio.Event()
        feeds = [
            FeedConnection(n, s, make_protocol(s, api_key="key"), received[n].append)
            for n, s in config.feeds.items()
        ]
        settings = SimulatorSettings(speed=10.0, wait_for_clients_s=5)
        simulator = asyncio.create_task(serve_scenario(config, records, settings, stop))
        tasks = [asyncio.create_task(feed.run(stop)) for feed in feeds]
        stats = await asyncio.wait_for(simulator, scaled(10))
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), scaled(5))
        return stats

    stats = asyncio.run(main())
    assert stats.done and stats.frames == len(records)
    protocols = {"bin": "binance", "hl": "hyperliquid", "fx": "massive"}
    for name, protocol in protocols.items():
        venue = config.feeds[name].venue
        mine = [r for r in records if r.get("venue", "fx") == (venue or "fx")]
        assert _without(received[name], "seq", "recv_ts") == [_carried(r, protocol) for r in mine]
    shfe = [r for r in records if r.get("venue") == "SHFE"]
    assert _without(received["shfe"], "seq", "recv_ts") == shfe


def test_a_taken_port_or_a_tls_url_is_a_feed_error() -> None:
    config = _config("bin", "comex")
    port = int(_url(config, "comex").split(":")[2].split("/")[0])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(FeedError, match=rf"feed comex: cannot listen on 127\.0\.0\.1:{port}"):
            asyncio.run(serve_scenario(config, [], SimulatorSettings(), asyncio.Event()))
    tls = _config("bin", url="wss://127.0.0.1:{port}/ws")
    with pytest.raises(FeedError, match="feed bin: the simulator serves plain ws://"):
        asyncio.run(serve_scenario(tls, [], SimulatorSettings(), asyncio.Event()))


@pytest.mark.parametrize(
    "bad",
    [
        {"speed": 0},
        {"speed": float("inf")},
        {"drop_every_s": -1.0},
        {"stall_every_s": 1.0},
        {"stall_every_s": 1.0, "stall_for_s": 1.0},
        {"bad_every": 0},
        {"wait_for_clients_s": -1.0},
        {"max_gap_s": 0.0},
    ],
)
def test_bad_simulator_settings_are_feed_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(FeedError, match="simulator"):
        SimulatorSettings(**bad)


def test_run_simulator_plays_a_file_to_its_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config("comex")
    path = tmp_path / "ticks.jsonl"
    lines = [_quote("COMEX", i) for i in range(5)] + [_quote("SHFE", 1), {"type": "trade"}]
    path.write_bytes(b"\n".join(map(orjson.dumps, lines)))
    caplog.set_level(logging.INFO, logger="simulator")
    # nobody connects: the clock starts after the wait, with a warning
    run_simulator(config, path, SimulatorSettings(speed=100.0, wait_for_clients_s=0.2))
    assert "no subscribed client after 0.2 s on feeds comex" in caplog.text
    assert "no feed serves venue SHFE" in caplog.text
    assert "scenario done: 5 frames" in caplog.text
    assert "1 not records, 1 unserved" in caplog.text
    with pytest.raises(FeedError, match="cannot read scenario"):
        run_simulator(config, tmp_path / "nope.jsonl", SimulatorSettings())


def test_stock_reports_are_served_by_the_venue_s_native_bridge_only() -> None:
    router = Router(_config(*FEEDS).feeds)
    stock = {"type": "stock", "instrument": "XAG", "registered": 1, "open_interest": 2, "ts": 1}
    assert router.route(stock | {"venue": "COMEX"}) == ("comex",)
    assert router.route(stock | {"venue": "SHFE"}) == ("shfe",)  # its map names XAG
    assert router.route(stock | {"venue": "BIN"}) == ()  # binance cannot carry one
    assert router.unserved == {"venue BIN": 1}


def test_status_records_are_served_by_a_bridge_or_binances_contract_status() -> None:
    router = Router(_config(*FEEDS).feeds)
    status = {"type": "status", "instrument": "XAG", "status": "halted", "ts": 1}
    assert router.route(status | {"venue": "COMEX"}) == ("comex",)
    assert router.route(status | {"venue": "BIN"}) == ("bin",)
    assert router.route(status | {"venue": "HL"}) == ()  # Hyperliquid publishes none
    assert router.unserved == {"venue HL": 1}


def test_a_status_round_trips_through_binances_contract_info() -> None:
    settings = FeedSettings(**FEEDS["bin"], url="ws://127.0.0.1:1/ws")
    venue, parser = make_venue(settings), make_protocol(settings)
    session = venue.new_session()
    venue.answer(session, make_protocol(settings).on_connect()[0])
    for status in ("halted", "trading"):
        record = {"type": "status", "venue": "BIN", "instrument": "XAG", "status": status,
                  "ts": 1769781600000}  # fmt: skip
        frame = venue.encode(record)
        assert session.wants(frame.symbol)  # the client subscribed to !contractInfo
        (back,) = parser.parse(frame.text).records
        assert {k: back[k] for k in record} == record
    with pytest.raises(ValueError, match="status"):
        venue.encode({**record, "status": "paused"})
