"""Running the real gateway in tests: the ``arbstream gateway`` process, WebSocket
clients that record what they receive, and what the topics say a subscriber should see.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import websockets
from jsonschema import Draft202012Validator

from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.kafka.topics import ensure_topics
from arbstream.config import load_config
from arbstream.gateway.access import new_token
from arbstream.gateway.subscription import Subscription
from arbstream.streams import validation
from arbstream.supervisor import ChildProcess
from helpers.http import get
from helpers.kafka import Record, free_port, produce, scaled
from helpers.paths import SCENARIOS
from helpers.pipeline import arbstream_process
from helpers.schemas import check_input, check_output, load, registry

#: (topic, key) -> records in order
ByKey = dict[tuple[str, str | None], list[dict[str, Any]]]


class GatewayProcess:
    """``arbstream gateway`` in a subprocess on a free port."""

    def __init__(
        self, config: Path, bootstrap: str, log: Path, port: int | None = None, **env: str
    ) -> None:
        self.port = free_port() if port is None else port
        full_env = {
            **os.environ,
            "ARBSTREAM_BROKER": f"kafka://{bootstrap}",
            "ARBSTREAM_GATEWAY_PORT": str(self.port),
            "ARBSTREAM_GATEWAY_HOST": "127.0.0.1",
            **env,
        }
        self.proc: ChildProcess = arbstream_process(
            ["gateway", "--config", str(config)], full_env, log
        )
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        self.http = f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, bytes]:
        return get(self.http + path)

    def status(self, path: str) -> int:
        """The HTTP status of ``path``, 0 while nothing listens."""
        try:
            return self.get(path)[0]
        except OSError:
            return 0

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + scaled(timeout_s)
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise AssertionError(f"gateway exited:\n{self.proc.tail(30)}")
            with contextlib.suppress(OSError):
                if self.get("/readyz")[0] == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"gateway not ready in {timeout_s} s:\n{self.proc.tail(30)}")

    def metric(self, name: str) -> float:
        for line in self.get("/metrics")[1].decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no metric {name}")

    def rss_mib(self) -> float:
        """The gateway's resident memory (the arbstream process itself)."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kib = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:"))
        return kib / 1024

    def stop(self) -> int:
        return self.proc.stop(scaled(30))


def start_produce(
    tmp_path: Path, config: Path, bootstrap: str, lines: list[bytes], name: str
) -> ChildProcess:
    """``arbstream produce`` of ``lines`` (written to ``tmp_path/name``), started."""
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    env = {**os.environ, "ARBSTREAM_BROKER": f"kafka://{bootstrap}"}
    return arbstream_process(
        ["produce", str(path), "--config", str(config)], env, tmp_path / f"{name}.log"
    )


def produce_lines(
    tmp_path: Path, config: Path, bootstrap: str, lines: list[bytes], name: str
) -> None:
    """``arbstream produce`` of ``lines``, to the end (status 0)."""
    proc = start_produce(tmp_path, config, bootstrap, lines, name)
    assert proc.wait(120) == 0, proc.tail(20)


@dataclass
class Received:
    """What one WebSocket client got: snapshots, live records and control messages."""

    snapshot: list[dict[str, Any]] = field(default_factory=list)
    live: list[dict[str, Any]] = field(default_factory=list)
    control: list[dict[str, Any]] = field(default_factory=list)
    in_snapshot: bool = False
    snapshots_done: int = 0
    close_code: int | None = None
    close_reason: str = ""
    outbox: asyncio.Queue[str] | None = None  # messages to send on its connection

    def take(self, message: dict[str, Any]) -> None:
        if "topic" in message:
            (self.snapshot if self.in_snapshot else self.live).append(message)
            return
        self.control.append(message)
        if message.get("type") == "snapshot":
            self.in_snapshot = message["phase"] == "begin"
            if message["phase"] == "begin":
                self.snapshot = []
            else:
                self.snapshots_done += 1


async def collect(
    url: str, filters: dict[str, Any], received: Received, stop: asyncio.Event
) -> None:
    """Subscribe with ``filters``, send what lands in ``received.outbox``, and record
    every message until ``stop`` or a close."""
    outbox = received.outbox = asyncio.Queue()
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "filters": filters}).decode())
        stopping = asyncio.ensure_future(stop.wait())
        sending = asyncio.ensure_future(outbox.get())
        try:
            while True:
                receiving = asyncio.ensure_future(ws.recv())
                while True:
                    done, _ = await asyncio.wait(
                        {receiving, stopping, sending}, return_when="FIRST_COMPLETED"
                    )
                    if sending in done:
                        await ws.send(sending.result())
                        sending = asyncio.ensure_future(outbox.get())
                    if receiving in done or stopping in done:
                        break
                if receiving not in done:
                    receiving.cancel()
                    return
                try:
                    received.take(orjson.loads(receiving.result()))
                except websockets.ConnectionClosed as closed:
                    if closed.rcvd is not None:
                        received.close_code = closed.rcvd.code
                        received.close_reason = closed.rcvd.reason
                    return
        finally:
            stopping.cancel()
            sending.cancel()


async def collect_sse(url: str, received: Received, stop: asyncio.Event) -> None:
    """Read a Server-Sent Events stream into ``received`` until ``stop``."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        event, stopping = "", asyncio.ensure_future(stop.wait())
        try:
            while True:
                reading = asyncio.ensure_future(response.content.readline())
                done, _ = await asyncio.wait({reading, stopping}, return_when="FIRST_COMPLETED")
                if reading not in done:
                    reading.cancel()
                    return
                line = reading.result()
                if not line:
                    return
                if line.startswith(b"event: "):
                    event = line[7:].strip().decode()
                elif line.startswith(b"data: "):
                    message = orjson.loads(line[6:])
                    assert ("topic" in message) == (event == "record"), (event, message)
                    received.take(message)
        finally:
            stopping.cancel()


def check_messages(messages: Iterable[dict[str, Any]]) -> int:
    """Every message valid under docs/schemas/gateway-message.schema.json, and every
    record in an envelope under its own schema; returns how many were checked."""
    validator = Draft202012Validator(load("gateway-message.schema.json"), registry=registry())
    n = 0
    for message in messages:
        errors = list(validator.iter_errors(message))
        assert not errors, (errors[0].message, message)
        if "topic" in message:
            record = message["record"]
            (check_input if record["type"] == "quote" else check_output)(record)
        n += 1
    return n


def by_key(messages: Iterable[dict[str, Any]], keep: Subscription | None = None) -> ByKey:
    matcher = (keep or Subscription()).matcher()
    out: ByKey = defaultdict(list)
    for m in messages:
        if matcher(m["record"]):
            out[(m["topic"], m["key"])].append(m["record"])
    return dict(out)


def topic_messages(
    topic_records: dict[str, list[Record]], venues: frozenset[str]
) -> list[dict[str, Any]]:
    """The topics' records as gateway messages, in offset order per partition; of the ticks
    topic only valid quotes of known venues (what the gateway forwards)."""
    out = []
    latest: dict[tuple[str, str], int] = {}  # a quote older than its venue's latest: dropped
    for topic, records in topic_records.items():
        for r in sorted(records, key=lambda r: (r.partition, r.offset)):
            try:
                record = validation.decode(r.value)
            except ValueError:
                continue  # the ticks topic carries the feeds' input, garbage included
            if topic.endswith(".ticks"):
                if not isinstance(record, dict) or record.get("type") != "quote":
                    continue
                if validation.check(record)[0] is not None or record["venue"] not in venues:
                    continue
                where = (record["instrument"], record["venue"])
                if record["ts"] < latest.get(where, -1):
                    continue
                latest[where] = record["ts"]
            out.append(
                {"topic": topic, "key": None if r.key is None else r.key.decode(), "record": record}
            )
    return out


def final_view(messages: list[dict[str, Any]]) -> dict[tuple[str, str | None, Any], dict[str, Any]]:
    """What a snapshot taken after ``messages`` holds: the latest spread and basis record
    per key, every open signal, the latest quote per instrument and venue."""
    view: dict[tuple[str, str | None, Any], dict[str, Any]] = {}
    for m in messages:
        record, key, topic = m["record"], m["key"], m["topic"]
        if record["type"] == "quote":
            view[(topic, key, record["venue"])] = record
        elif record["type"] == "signal" and record["event"] == "close":
            view.pop((topic, key, None), None)
        else:
            view[(topic, key, None)] = record
    return view


def snapshot_view(
    snapshot: list[dict[str, Any]],
) -> dict[tuple[str, str | None, Any], dict[str, Any]]:
    return {
        (m["topic"], m["key"], m["record"]["venue"] if m["record"]["type"] == "quote" else None): m[
            "record"
        ]
        for m in snapshot
    }


class Clients:
    """WebSocket clients on an event loop in a thread of their own, so that the test can
    drive processes (and block) while they receive."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._running: list[tuple[asyncio.Event, concurrent.futures.Future[None]]] = []

    def subscribe(
        self, url: str, filters: dict[str, Any]
    ) -> tuple[Received, concurrent.futures.Future[None]]:
        received = Received()
        stop = asyncio.Event()
        future = asyncio.run_coroutine_threadsafe(collect(url, filters, received, stop), self.loop)
        self._running.append((stop, future))
        return received, future

    def send(self, received: Received, message: dict[str, Any]) -> None:
        """Send ``message`` on the connection ``received`` records."""
        deadline = time.monotonic() + scaled(30)
        while received.outbox is None:
            assert time.monotonic() < deadline, "the client never connected"
            time.sleep(0.05)
        outbox = received.outbox
        self.loop.call_soon_threadsafe(outbox.put_nowait, orjson.dumps(message).decode())

    def events(self, url: str) -> Received:
        """An SSE reader of ``url``."""
        received = Received()
        stop = asyncio.Event()
        future = asyncio.run_coroutine_threadsafe(collect_sse(url, received, stop), self.loop)
        self._running.append((stop, future))
        return received

    def close(self) -> None:
        for stop, future in self._running:
            self.loop.call_soon_threadsafe(stop.set)
            with contextlib.suppress(Exception):
                future.result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@dataclass(frozen=True)
class Site:
    """A deployment's config whose ticks topic holds the scenario's first quotes (so a
    snapshot has each venue's), and its clients' tokens."""

    config: Path
    bootstrap: str
    tokens_file: Path
    tokens: dict[str, str]  # client -> token


def quotes_site(kafka_bootstrap: str, tmp: Path) -> Site:
    """A deployment whose ticks topic holds the dislocation scenario's first 300 quotes,
    with a tokens file of two clients, ``desk`` and ``ops``."""
    prefix = f"gs{uuid.uuid4().hex[:8]}"
    config = tmp / "c.toml"
    text = (SCENARIOS / "dislocation-2026-01-30" / "config.toml").read_text()
    text = text.replace('topic_prefix = "arb"', f'topic_prefix = "{prefix}"')
    config.write_text(text + "\n[kafka]\npartitions = 2\n")
    topics = asyncio.run(ensure_topics(KafkaClients(kafka_bootstrap), load_config(config)))
    lines = (SCENARIOS / "dislocation-2026-01-30" / "ticks.jsonl").read_bytes().splitlines()
    quotes = [(b"XAG", q, None) for q in lines if b'"quote"' in q][:300]
    asyncio.run(produce(kafka_bootstrap, topics.ticks, quotes))
    tokens, entries = {}, ["# the gateway's clients", ""]
    for name in ("desk", "ops"):
        tokens[name], line = new_token(name)
        entries.append(line)
    tokens_file = tmp / "tokens"
    tokens_file.write_text("\n".join(entries) + "\n")
    return Site(config, kafka_bootstrap, tokens_file, tokens)
