"""The connection loop against a real local WebSocket server: reconnects, watchdog,
keepalives, duplicates across reconnects, bad frames, refused authentication."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from arbstream.feeds.connection import FeedConnection
from arbstream.feeds.errors import FeedAuthError
from arbstream.feeds.protocols import Parsed, Protocol, make_protocol
from arbstream.feeds.settings import FeedSettings
from helpers.kafka import free_port, scaled, until
from helpers.venue_server import VenueServer

RECONNECT_WITHIN_S = scaled(3.0)


def _settings(url: str, **overrides: Any) -> FeedSettings:
    base: dict[str, Any] = {
        "protocol": "native",
        "url": url,
        "venue": "X",
        "idle_timeout_s": 1.0,
        "backoff_max_s": 2.0,
        "sequence": "contiguous",
    }
    return FeedSettings(**(base | overrides))


async def _with_feed(
    server: VenueServer,
    scenario: Callable[[FeedConnection, list[dict[str, Any]]], Awaitable[None]],
    **overrides: Any,
) -> tuple[FeedConnection, list[dict[str, Any]]]:
    records: list[dict[str, Any]] = []
    settings = _settings(server.url, **overrides)
    feed = FeedConnection("test", settings, make_protocol(settings), records.append)
    stop = asyncio.Event()
    await server.start()
    task = asyncio.create_task(feed.run(stop))
    try:
        await until(lambda: len(records) >= 20, 5, "the first records")
        await scenario(feed, records)
    finally:
        stop.set()
        await asyncio.wait_for(task, scaled(5))
        await server.close()
    return feed, records


def _assert_clean(records: list[dict[str, Any]], server: VenueServer) -> None:
    """No duplicates, nothing garbled: each record is exactly what the server numbered."""
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(set(seqs)), "duplicated or reordered records"
    for record in records:
        sent = orjson.loads(server.frame(record["seq"]))
        assert {k: v for k, v in record.items() if k != "recv_ts"} == sent
        assert abs(record["recv_ts"] / 1000 - time.time()) < 60


async def _reconnected_within(server: VenueServer, since: float, connections: int) -> float:
    await until(lambda: len(server.connected_at) > connections, 10, "a reconnect")
    return server.connected_at[connections] - since


@pytest.mark.slow  # (seconds of real reconnect backoff)
def test_reconnects_after_the_server_drops_the_connection() -> None:
    server = VenueServer(free_port())

    async def scenario(feed: FeedConnection, records: list[dict[str, Any]]) -> None:
        for _ in range(3):
            before, n = len(server.connected_at), len(records)
            dropped = time.monotonic()
            server.drop_all()
            assert await _reconnected_within(server, dropped, before) < RECONNECT_WITHIN_S
            await until(lambda n=n: len(records) > n + 20, 5, "records after the reconnect")

    feed, records = asyncio.run(_with_feed(server, scenario))
    _assert_clean(records, server)
    assert feed.stats.reconnects == 3 and feed.stats.connects == 4
    # the server resent its latest frame on each reconnect: dropped as duplicates
    assert feed.stats.duplicates >= 1
    # frames lost while away are counted as sequence gaps
    assert feed.stats.seq_gaps >= 1


@pytest.mark.slow  # (seconds of real reconnect backoff)
def test_reconnects_after_the_server_restarts() -> None:
    server = VenueServer(free_port())

    async def scenario(feed: FeedConnection, records: list[dict[str, Any]]) -> None:
        await server.stop_listening()
        await until(lambda: not feed.stats.connected, 5, "the disconnect")
        await asyncio.sleep(1.5)  # down long enough for several failed attempts
        n, before = len(records), len(server.connected_at)
        restarted = time.monotonic()
        await server.start()
        assert await _reconnected_within(server, restarted, before) < RECONNECT_WITHIN_S
        await until(lambda: len(records) > n + 20, 5, "records after the restart")

    feed, records = asyncio.run(_with_feed(server, scenario))
    _assert_clean(records, server)
    assert feed.stats.reconnects >= 2  # failed attempts while it was down count too


@pytest.mark.slow  # (seconds of real reconnect backoff)
def test_idle_watchdog_replaces_a_stalled_connection() -> None:
    server = VenueServer(free_port())

    async def scenario(feed: FeedConnection, records: list[dict[str, Any]]) -> None:
        before = len(server.connected_at)
        stalled = time.monotonic()
        server.stalled = True
        # the watchdog fires after idle_timeout_s (1 s) with no frame
        assert await _reconnected_within(server, stalled, before) < RECONNECT_WITHIN_S
        n = len(records)
        server.stalled = False
        await until(lambda: len(records) > n + 20, 5, "records after the stall")

    feed, records = asyncio.run(_with_feed(server, scenario))
    _assert_clean(records, server)
    assert feed.stats.reconnects == 1


@pytest.mark.slow  # (seconds of real reconnect backoff)
def test_bad_frames_are_counted_and_never_fatal() -> None:
    server = VenueServer(free_port())
    server.garbage_every = 5

    async def scenario(feed: FeedConnection, records: list[dict[str, Any]]) -> None:
        await until(lambda: len(records) >= 200, 10, "200 records")

    feed, records = asyncio.run(_with_feed(server, scenario))
    _assert_clean(records, server)
    assert feed.stats.connects == 1 and feed.stats.reconnects == 0
    # one garbled frame after every 5th good one
    assert feed.stats.bad_frames == pytest.approx(server.seq // 5, abs=1)
    assert feed.stats.frames == len(records) + feed.stats.bad_frames + feed.stats.duplicates


@pytest.mark.slow  # (seconds of real reconnect backoff)
def test_hyperliquid_keepalive_pings_are_sent_and_pongs_are_quiet() -> None:
    server = VenueServer(free_port(), period_s=5.0)  # no quotes: only keepalives flow
    server.reply['{"method":"ping"}'] = '{"channel":"pong"}'
    records: list[dict[str, Any]] = []
    settings = _settings(
        server.url,
        protocol="hyperliquid",
        venue="HL",
        symbols={"xyz:SILVER": "XAG"},
        ping_interval_s=0.2,
        idle_timeout_s=1.0,
    )
    feed = FeedConnection("hl", settings, make_protocol(settings), records.append)

    async def run() -> None:
        stop = asyncio.Event()
        await server.start()
        task = asyncio.create_task(feed.run(stop))
        try:
            await asyncio.sleep(scaled(2.5))  # pongs every 0.2 s keep the 1 s watchdog quiet
        finally:
            stop.set()
            await asyncio.wait_for(task, scaled(5))
            await server.close()

    asyncio.run(run())
    subscribe = '{"method":"subscribe","subscription":{"type":"bbo","coin":"xyz:SILVER"}}'
    assert server.received[0] == subscribe
    assert server.received.count('{"method":"ping"}') >= 8
    assert feed.stats.connects == 1 and feed.stats.reconnects == 0
    assert feed.stats.bad_frames == 0 and records == []


def test_refused_authentication_stops_the_feed() -> None:
    server = VenueServer(free_port(), period_s=5.0)
    auth = '{"action":"auth","params":"wrong-key"}'
    server.reply[auth] = '[{"ev":"status","status":"auth_failed","message":"bad key"}]'
    settings = _settings(
        server.url,
        protocol="massive",
        venue=None,
        symbols={"USD/CNY": "USDCNY"},
        api_key_env="MASSIVE_API_KEY",
    )
    feed = FeedConnection("fx", settings, make_protocol(settings, "wrong-key"), print)

    async def run() -> None:
        await server.start()
        try:
            with pytest.raises(FeedAuthError, match="bad key"):
                await asyncio.wait_for(feed.run(asyncio.Event()), scaled(5))
        finally:
            with contextlib.suppress(Exception):
                await server.close()

    asyncio.run(run())
    assert server.received[:2] == [auth, '{"action":"subscribe","params":"C.USD/CNY"}']


class _BuggyParser(Protocol):
    def parse(self, frame: str | bytes) -> Parsed:
        if frame == "boom":
            raise KeyError("bid")
        return Parsed(
            [
                {
                    "type": "quote",
                    "venue": "X",
                    "instrument": "XAG",
                    "bid": 1.0,
                    "ask": 2.0,
                    "ts": int(frame),
                }
            ]
        )


def test_a_parser_exception_is_a_bad_frame_not_the_end_of_the_feed() -> None:
    records: list[dict[str, Any]] = []
    settings = _settings("ws://127.0.0.1:1/x")
    feed = FeedConnection("x", settings, _BuggyParser(settings), records.append)
    assert feed.on_frame("1", 1.0) == 1
    assert feed.on_frame("boom", 2.0) == 0
    assert feed.on_frame("2", 3.0) == 1
    assert feed.stats.bad_frames == 1 and [r["ts"] for r in records] == [1, 2]
    assert records[1]["recv_ts"] == 3000


@pytest.mark.slow  # (seconds of real reconnect backoff)
def test_a_venue_that_greets_and_hangs_up_does_not_reset_the_backoff() -> None:
    connections: list[float] = []

    async def greet_and_close(ws: ServerConnection) -> None:
        connections.append(time.monotonic())
        await ws.recv()  # auth
        await ws.recv()  # subscribe
        await ws.send('[{"ev":"status","status":"max_connections","message":"too many"}]')

    async def run() -> FeedConnection:
        port = free_port()
        settings = _settings(
            f"ws://127.0.0.1:{port}/forex",
            protocol="massive",
            venue=None,
            symbols={"USD/CNY": "USDCNY"},
            api_key_env="K",
            backoff_max_s=2.0,
        )
        feed = FeedConnection("fx", settings, make_protocol(settings, "k"), print)
        async with serve(greet_and_close, "127.0.0.1", port):
            stop = asyncio.Event()
            task = asyncio.create_task(feed.run(stop))
            await asyncio.sleep(4.0)
            stop.set()
            await asyncio.wait_for(task, scaled(5))
        return feed

    feed = asyncio.run(run())
    # backoff grows 0.1, 0.2, 0.4 ... 2 s (jittered): a handful of attempts, not a storm
    assert 3 <= len(connections) <= 20, len(connections)
    # the status is logged, not swallowed: one bad frame per connection, but for the last
    # one when the stop comes between the venue's accept and its status frame
    assert len(connections) - 1 <= feed.stats.bad_frames <= len(connections)
