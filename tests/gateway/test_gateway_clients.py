"""Clients that misbehave, on the real gateway with a real worker and broker: one that
stops reading is evicted (1013) while another on the same gateway misses nothing; a
thousand malformed messages leave the gateway serving."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import websockets
from gateway_helpers import GatewayProcess, by_key, topic_messages
from kafka_helpers import consume, scaled
from pipeline import Worker, arbstream_process, replay_by_key
from streamgen import config_toml, random_stream, random_venues

from agents.topics import Topics
from arbstream.config import load_config

#: Ticks in the heavy stream: with a spread record on every tick, about 5 outputs each.
HEAVY_TICKS = 12_000
QUEUE = 2000


def _heavy_stream(tmp_path: Path, prefix: str) -> tuple[Path, list[bytes]]:
    """A generated five-venue stream with a spread record on every tick."""
    rng = random.Random(5)
    venues = random_venues(rng, 5)
    path = tmp_path / "heavy.toml"
    text = config_toml(venues, None, spread_emit_ms=0, topic_prefix=prefix)
    path.write_text(text + "\n[kafka]\npartitions = 2\n")
    return path, random_stream(rng, venues, HEAVY_TICKS)


def _produce_file(tmp_path: Path, config: Path, bootstrap: str, lines: list[bytes]) -> Any:
    path = tmp_path / "ticks.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    env = {**os.environ, "ARBSTREAM_BROKER": f"kafka://{bootstrap}"}
    return arbstream_process(
        ["produce", str(path), "--config", str(config)], env, tmp_path / "produce.log"
    )


async def _slow_client(url: str, evicted: Any) -> tuple[int | None, str, int]:
    """Subscribe, stop reading until ``evicted()``, then read what is left: the close."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill up fast
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    sock.connect((host, int(port)))
    sock.setblocking(False)
    ws = await websockets.connect(url, sock=sock, max_size=None, max_queue=4)
    await ws.send('{"op": "subscribe"}')
    deadline = time.monotonic() + scaled(120)
    while not await asyncio.to_thread(evicted):
        assert time.monotonic() < deadline, "the slow client was never evicted"
        await asyncio.sleep(0.2)
    read = 0
    try:
        while True:
            await asyncio.wait_for(ws.recv(), scaled(30))
            read += 1
    except websockets.ConnectionClosed as closed:
        rcvd = closed.rcvd
        return (rcvd.code if rcvd else None), (rcvd.reason if rcvd else ""), read


async def _normal_client(url: str, until_count: int, timeout_s: float) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send('{"op": "subscribe", "filters": {"types": ["spread", "signal", "basis"]}}')
        deadline = time.monotonic() + scaled(timeout_s)
        while len(got) < until_count and time.monotonic() < deadline:
            message = orjson.loads(await asyncio.wait_for(ws.recv(), scaled(30)))
            if "topic" in message:
                got.append(message)
    return got


def test_a_slow_client_is_evicted_while_a_normal_one_misses_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"gwslow{uuid.uuid4().hex[:6]}"
    config_path, lines = _heavy_stream(tmp_path, prefix)
    config = load_config(config_path)
    topics = Topics(prefix)
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

        async def scenario() -> tuple[tuple[int | None, str, int], list[dict[str, Any]]]:
            def evicted() -> bool:
                rss.append(g.rss_mib())
                return g.metric("arbstream_gateway_clients_evicted_total") >= 1

            slow = asyncio.create_task(_slow_client(g.url, evicted))
            await asyncio.sleep(0.5)
            normal = asyncio.create_task(_normal_client(g.url, expected, 180))
            await asyncio.sleep(0.5)
            producer = await asyncio.to_thread(
                _produce_file,
                tmp_path,
                config_path,
                kafka_bootstrap,
                lines,
            )
            assert await asyncio.to_thread(producer.wait, 120) == 0
            return await slow, await normal

        keyed, _ = replay_by_key(lines, config)
        expected = sum(len(v) for v in keyed.values())
        (code, reason, read_after), received = asyncio.run(scenario())
        assert code == 1013, (code, reason)
        assert "too slow" in reason
        # what the slow client could still read was only what its socket buffers held
        assert read_after < QUEUE * 20
        # the normal client, on the same gateway: every output record, per key, in order
        outputs = {
            name: asyncio.run(
                consume(
                    kafka_bootstrap, name, 0, 60, isolation_level="read_committed", linger_s=1.0
                )
            )
            for name in (topics.spreads, topics.signals, topics.basis)
        }
        assert by_key(received) == by_key(topic_messages(outputs, frozenset(config.venues)))
        assert len(received) == expected
        assert g.metric("arbstream_gateway_messages_dropped_total") >= QUEUE
        peak = max(rss)
        print(f"gateway RSS while a client was stuck: peak {peak:.1f} MiB over {len(rss)} samples")
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
