"""Clients that misbehave, on the real gateway with a real worker and broker: one that
stops reading is evicted (1013) while another on the same gateway misses nothing; a
thousand malformed messages leave the gateway serving."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import socket
import struct
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import websockets

from arbstream.agents.kafka.topics import Topics
from arbstream.config import load_config
from arbstream.gateway.subscription import Subscription
from helpers.gateway import (
    Clients,
    GatewayProcess,
    by_key,
    start_produce,
    topic_messages,
)
from helpers.kafka import consume, produce, scaled, wait_for
from helpers.pipeline import Worker, replay_by_key
from helpers.streamgen import config_toml, random_stream, random_venues

#: Ticks in the heavy stream: with a spread record on every tick, about 5 outputs each.
HEAVY_TICKS = 12_000
QUEUE = 5000


def _heavy_stream(tmp_path: Path, prefix: str) -> tuple[Path, list[bytes]]:
    """A generated five-venue stream with a spread record on every tick."""
    rng = random.Random(5)
    venues = random_venues(rng, 5)
    path = tmp_path / "heavy.toml"
    text = config_toml(venues, None, spread_emit_ms=0, topic_prefix=prefix)
    path.write_text(text + "\n[kafka]\npartitions = 2\n")
    return path, random_stream(rng, venues, HEAVY_TICKS)


class RawClient:
    """A WebSocket client on a bare socket with a 4 KiB receive buffer, so that when it
    stops reading, the gateway sees it at once. It reads only when told to, and then
    everything until the connection ends, returning the close frame's code and reason
    (None when the connection ended without one)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("ws://").split("/")[0].split(":")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(scaled(30))
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self._send_text('{"op": "subscribe"}')

    def _send_text(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        assert len(payload) < 126
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    def read_to_end(self) -> tuple[int | None, str, int]:
        """(close code or None, reason, frames read before it), once the gateway has
        ended the connection; AssertionError if it is still open after 30 s."""
        data = b""
        try:
            while chunk := self.sock.recv(1 << 16):
                data += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            raise AssertionError("the gateway never ended the connection") from None
        frames, at = 0, 0
        while at + 2 <= len(data):
            opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
            at += 2
            if length == 126:
                length, at = struct.unpack("!H", data[at : at + 2])[0], at + 2
            elif length == 127:
                length, at = struct.unpack("!Q", data[at : at + 8])[0], at + 8
            body, at = data[at : at + length], at + length
            if opcode == 0x8:
                code = struct.unpack("!H", body[:2])[0] if len(body) >= 2 else None
                return code, body[2:].decode(errors="replace"), frames
            frames += 1
        return None, "", frames


def _normal_filters(venue: str) -> dict[str, list[str]]:
    """The normal client's subscription: every output record of one venue. (A client of
    every record at the stream's full speed would be a slow client too: on a loaded
    2-core machine it fell 5,000 messages behind. The stalled clients take everything.)"""
    return {"types": ["spread", "signal", "basis"], "venues": [venue]}


async def _normal_client(
    url: str, filters: dict[str, list[str]], until_count: int, ready: asyncio.Event
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "filters": filters}).decode())
        deadline = time.monotonic() + scaled(180)
        while len(got) < until_count and time.monotonic() < deadline:
            message = orjson.loads(await asyncio.wait_for(ws.recv(), scaled(30)))
            if "topic" in message:
                got.append(message)
            elif message == {"type": "snapshot", "phase": "end"}:
                ready.set()
    return got


def test_a_slow_client_is_evicted_while_a_normal_one_misses_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Two clients stop reading: both are evicted (1013). One reads again and finds the
    close frame after what its socket held; the other never does, and its connection is
    dropped after the close timeout. A normal client on the same gateway, subscribed to
    one venue's outputs, gets every record of them, and the gateway's memory stays
    bounded."""
    prefix = f"gwslow{uuid.uuid4().hex[:6]}"
    config_path, lines = _heavy_stream(tmp_path, prefix)
    config = load_config(config_path)
    topics = Topics(prefix)
    keyed, _ = replay_by_key(lines, config)
    filters = _normal_filters(sorted(config.venues)[0])
    matches = Subscription.model_validate(filters).matcher()
    expected = sum(1 for records in keyed.values() for r in records if matches(r))
    assert expected > HEAVY_TICKS // 2  # the normal client still takes a heavy share
    worker = Worker(config_path, kafka_bootstrap, tmp_path / "worker.log")
    gateway = None
    try:
        worker.wait_ready()
        gateway = GatewayProcess(
            config_path,
            kafka_bootstrap,
            tmp_path / "gateway.log",
            ARBSTREAM_GATEWAY_QUEUE=str(QUEUE),
        )
        gateway.wait_ready()
        g = gateway
        rss: list[float] = []

        def websockets_connected() -> float:
            return g.metric('arbstream_gateway_clients{transport="websocket"}')

        async def scenario() -> dict[str, Any]:
            slow, stalled = RawClient(g.url), RawClient(g.url)
            ready = asyncio.Event()
            normal = asyncio.create_task(_normal_client(g.url, filters, expected, ready))
            await asyncio.wait_for(ready.wait(), scaled(30))
            producing = asyncio.create_task(
                asyncio.to_thread(
                    start_produce, tmp_path, config_path, kafka_bootstrap, lines, "ticks.jsonl"
                )
            )
            deadline = time.monotonic() + scaled(120)
            while await asyncio.to_thread(g.metric, "arbstream_gateway_clients_evicted_total") < 2:
                assert time.monotonic() < deadline, "the stalled clients were never evicted"
                rss.append(await asyncio.to_thread(g.rss_mib))
                await asyncio.sleep(0.2)
            evicted_at = time.monotonic()
            # gone from the gateway's count at once, whatever their sockets do
            connected = await asyncio.to_thread(websockets_connected)
            slow_end = await asyncio.to_thread(slow.read_to_end)
            producer = await producing
            assert await asyncio.to_thread(producer.wait, 120) == 0
            received = await normal
            # the stalled one reads only after the close timeout: its connection is gone
            await asyncio.sleep(max(0.0, evicted_at + 12 - time.monotonic()))
            stalled_end = await asyncio.to_thread(stalled.read_to_end)
            return {
                "connected": connected,
                "slow": slow_end,
                "stalled": stalled_end,
                "received": received,
            }

        result = asyncio.run(scenario())
        assert result["connected"] == 1  # the normal client
        code, reason, read_after = result["slow"]
        assert code == 1013, (code, reason)
        assert "too slow" in reason
        # what the slow client could still read was only what its socket buffers held
        assert read_after < QUEUE
        # the stalled one: the gateway ended its connection (with the close frame, if the
        # socket took it before the close timeout; read_to_end fails if it is still open)
        code, _, _ = result["stalled"]
        assert code in (None, 1013)
        # the normal client, on the same gateway: every output record, per key, in order
        outputs = {
            name: asyncio.run(
                consume(
                    kafka_bootstrap, name, 0, 60, isolation_level="read_committed", linger_s=1.0
                )
            )
            for name in (topics.spreads, topics.signals, topics.basis)
        }
        received = result["received"]
        assert by_key(received) == by_key(
            topic_messages(outputs, frozenset(config.venues)), Subscription.model_validate(filters)
        )
        assert len(received) == expected
        assert g.metric("arbstream_gateway_messages_dropped_total") >= 2 * QUEUE
        assert websockets_connected() == 0
        peak = max(rss)
        print(f"gateway RSS while clients were stuck: peak {peak:.1f} MiB over {len(rss)} samples")
        assert peak < 200, f"gateway RSS {peak:.1f} MiB"
        assert g.stop() == 0
    finally:
        if gateway is not None and gateway.proc.alive():
            gateway.stop()
        worker.stop()


def test_a_thousand_malformed_messages_leave_the_gateway_serving(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"gwbad{uuid.uuid4().hex[:6]}"
    config_path, _ = _heavy_stream(tmp_path, prefix)
    worker = Worker(config_path, kafka_bootstrap, tmp_path / "worker.log")
    gateway = None
    try:
        worker.wait_ready()
        gateway = GatewayProcess(config_path, kafka_bootstrap, tmp_path / "gateway.log")
        gateway.wait_ready()
        url = gateway.url
        texts = [
            "{not json",
            '{"op": "subscribe", "filters": {"colour": ["red"]}}',
            '{"op": "subscribe", "filters": {"types": "spread"}}',
            '{"op": "publish"}',
            "[]",
            "",
            '{"op": "subscribe", "filters": {"venues": [1, 2]}}',
            "\u00ff\u0000",
        ]

        async def abuse() -> tuple[int, list[int | None], dict[str, Any]]:
            errors = 0
            closes: list[int | None] = []
            async with websockets.connect(url, max_size=None) as ws:
                for i in range(900):
                    await ws.send(texts[i % len(texts)])
                    reply = orjson.loads(await asyncio.wait_for(ws.recv(), scaled(10)))
                    assert reply["type"] == "error" and reply["error"], reply
                    errors += 1
                for i in range(100):
                    async with websockets.connect(url, max_size=None) as other:
                        if i % 2:
                            await other.send(b"\x00\x01binary")
                        else:
                            await other.send("x" * 200_000)  # over the 64 KiB frame limit
                        try:
                            await asyncio.wait_for(other.recv(), scaled(10))
                        except websockets.ConnectionClosed as closed:
                            closes.append(closed.rcvd.code if closed.rcvd else None)
                # the first connection is still open and still takes a good subscription
                await ws.send('{"op": "subscribe", "filters": {"types": ["spread"]}}')
                first = orjson.loads(await asyncio.wait_for(ws.recv(), scaled(10)))
                return errors, closes, first

        errors, closes, first = asyncio.run(abuse())
        # and records nobody should have written to the ticks topic: a venue that is not
        # a name, a key that is not UTF-8, garbage; then a valid quote written over
        # several lines (legal JSON), which an SSE reader must get whole
        venue = load_config(config_path).venue_names[0]
        quote = {"type": "quote", "venue": venue, "instrument": "XAG", "bid": 80.0, "ask": 80.1}
        bad = [
            (b"XAG", orjson.dumps({**quote, "venue": [venue], "ts": 1769990400000}), 0),
            (b"\xff\xfe", orjson.dumps({**quote, "ts": 1769990400001}), 0),
            (b"XAG", b"\x00\x01 not json", 0),
            (b"XAG", orjson.dumps({**quote, "ts": 1769990400002}, option=orjson.OPT_INDENT_2), 0),
        ]
        events = Clients()
        try:
            quotes = events.events(f"{gateway.http}/events?types=quote")
            wait_for(lambda: quotes.snapshots_done == 1, 30, "the SSE snapshot")
            asyncio.run(produce(kafka_bootstrap, Topics(prefix).ticks, bad))
            wait_for(lambda: quotes.live, 30, "the multi-line quote over SSE")
        finally:
            events.close()
        assert [m["record"] for m in quotes.live] == [{**quote, "ts": 1769990400002}]
        assert gateway.metric("arbstream_gateway_caught_up") == 1.0
        assert errors == 900
        assert sorted(set(closes)) == [1003, 1009] and len(closes) == 100
        assert first["type"] == "subscribed" and first["filters"]["types"] == ["spread"]
        assert gateway.get("/healthz")[0] == 200 and gateway.get("/readyz")[0] == 200
        assert gateway.proc.alive()
        assert gateway.stop() == 0
    finally:
        if gateway is not None and gateway.proc.alive():
            gateway.stop()
        worker.stop()
