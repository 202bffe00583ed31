"""Feed benchmark: WebSocket frames -> FeedConnection -> KafkaSink -> the real broker.

    KAFKA_BOOTSTRAP=host:port python -m benchmarks.feed_bench [--frames N] [--rate R]

For each protocol (``native``, ``binance``) three separate processes take part: a
*venue* (a local websockets server speaking the protocol, frames written by the
simulator's encoders, feeds/simulator/frames.py), the *feed* (one ``FeedConnection``
putting into one ``KafkaSink``, exactly as ``arbstream feed`` wires them, on plain
asyncio) and this process, which starts them, reads Kafka and reports. Each phase
produces to a fresh topic prefix; the topics are deleted at the end.

* **throughput**: the venue pre-encodes N frames (4 instruments, 1 record per frame)
  and sends them over one connection as fast as the feed takes them. Frames/s = N /
  (time the last record is acknowledged by Kafka - time the first frame is received);
  the sink's producer is connected before the feed connects, so start-up is not
  counted. The sink's buffer is sized to N so that nothing is dropped.
* **latency** at an offered rate (default 2,000 frames/s for 10 s, in 10 ms slices):
  the venue stamps each frame with its send time in microseconds (native: an extra
  ``sent_us`` field, which the protocol passes through; binance: ``u``, the book update
  id, is the send time in microseconds, strictly increasing). A consumer in this
  process reads the ticks topic and takes, per record, its arrival time minus the
  stamp. The first second is warm-up and not counted.
* **peak RSS** of the feed process (``ru_maxrss``), in both runs. In the throughput run
  it includes whatever backlog the sink's buffer held (reported as ``backlog_max``).
* **parts** (where the time goes), in a fourth process and without a socket: CPU per
  frame of ``protocol.parse`` alone and of ``FeedConnection.on_frame`` with
  ``KafkaSink.put`` (parse, guard, encode, buffer), then the time the sink takes to
  deliver those N buffered records with nothing else to do.

The sink is instrumented without changing it: ``_send`` (one chunk, from build to
acknowledgement) and ``OutputBatches.flush`` are timed, which splits each chunk into
building its record batches and waiting for its delivery; chunks are summed separately
for while frames arrive and after the last one. A 5 ms sleeper in the feed process
measures its event-loop lag. The WebSocket is permessage-deflate by default, as
``arbstream feed`` offers and the simulator accepts (``--ws-compression none`` to
compare); ``--linger-ms`` overrides ``producer.linger_ms``. ``--profile`` runs the feed
of each throughput run under cProfile (its figures are then not comparable) and prints
its top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import platform
import pstats
import random
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from websockets.asyncio.server import ServerConnection, serve

import feeds.sink
from agents.outputs import OutputBatches
from agents.topics import Topics, ensure_topics
from benchmarks.stats import percentiles
from feeds.connection import FeedConnection
from feeds.protocols import make_protocol
from feeds.simulator.frames import make_venue
from feeds.sink import CHUNK_MAX, Entry, KafkaSink
from streams.config import Config, parse_config
from streams.feed_config import FeedSettings, ProducerSettings

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ("native", "binance")
#: The consumer's fetch_max_wait_ms, as in pipeline_bench (aiokafka's default is 500).
FETCH_WAIT_MS = int(os.environ.get("BENCH_FETCH_WAIT_MS", "5"))
START_TS = 1_769_990_400_000
#: (arbstream instrument, Binance symbol, starting mid price)
INSTRUMENTS = (
    ("XAG", "XAGUSDT", 78.0),
    ("XAU", "XAUUSDT", 2650.0),
    ("XPT", "XPTUSDT", 980.0),
    ("XPD", "XPDUSDT", 1010.0),
)
VENUE_OF = {"native": "COMEX", "binance": "BINANCE"}
SLICE_S = 0.010  # the paced venue sends rate * SLICE_S frames every SLICE_S
WARMUP_S = 1.0
PROCESS_TIMEOUT_S = 180.0

Json = dict[str, Any]


# --- workload and configuration --------------------------------------------------------


def quotes(n: int, venue: str, seed: int = 7) -> Iterator[Json]:
    """``n`` contract quotes, the instruments in turn, each a small random walk."""
    rng = random.Random(seed)
    mids = [mid for _, _, mid in INSTRUMENTS]
    gauss, randint = rng.gauss, rng.randint
    for i in range(n):
        k = i % len(INSTRUMENTS)
        mids[k] *= 1 + gauss(0, 0.00002)
        half = mids[k] * 0.00005
        yield {
            "type": "quote",
            "venue": venue,
            "instrument": INSTRUMENTS[k][0],
            "bid": round(mids[k] - half, 4),
            "ask": round(mids[k] + half, 4),
            "ts": START_TS + i,
            "bid_size": float(randint(1, 50)),
            "ask_size": float(randint(1, 50)),
        }


def feed_settings(protocol: str, url: str) -> Json:
    settings: Json = {"protocol": protocol, "url": url, "venue": VENUE_OF[protocol]}
    if protocol == "binance":
        settings["symbols"] = {symbol: name for name, symbol, _ in INSTRUMENTS}
    return settings


def bench_config(
    prefix: str, protocol: str, url: str, buffer_max: int, linger_ms: int | None = None
) -> Config:
    """One venue, one feed; producer settings are the defaults but for the buffer size
    (at least N, so that a burst drops nothing) and, if given, ``linger_ms``."""
    producer: Json = {"buffer_max_records": max(buffer_max, 100_000)}
    if linger_ms is not None:
        producer["linger_ms"] = linger_ms
    return parse_config(
        {
            "topic_prefix": prefix,
            "venues": {VENUE_OF[protocol]: {"currency": "USD", "unit": "oz"}},
            "feeds": {protocol: feed_settings(protocol, url)},
            "producer": producer,
        },
        f"<feed_bench {prefix}>",
    )


def encoded_frames(protocol: str, n: int) -> list[str]:
    venue = make_venue(FeedSettings(**feed_settings(protocol, "ws://127.0.0.1:1/")))
    return [venue.encode(record).text for record in quotes(n, VENUE_OF[protocol])]


# --- instrumentation (subprocesses only) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Chunk:
    """One ``KafkaSink._send``: wall-clock start, batches handed over, acknowledged."""

    start: float
    flushed: float
    acked: float
    records: int
    backlog: int  # records buffered when the chunk was taken (the chunk included)


_last_flush = [0.0]


class _TimedBatches(OutputBatches):
    async def send(self) -> None:
        await super().send()
        _last_flush[0] = time.time()


def install_timing() -> None:
    """Time ``OutputBatches.send`` inside the sink (a module global it looks up per chunk)."""
    vars(feeds.sink)["OutputBatches"] = _TimedBatches


class TimedSink(KafkaSink):
    """The sink, recording every chunk; ``done`` is set once ``target`` records are acked."""

    def __init__(self, config: Config, bootstrap: str, target: int) -> None:
        super().__init__(config, bootstrap)
        self.target = target
        self.acked = 0
        self.chunks: list[Chunk] = []
        self.done = asyncio.Event()

    async def _send(
        self,
        producer: Any,
        topics: Topics,
        counts: dict[str, int],
        partition_of: dict[tuple[str, bytes], int],
        chunk: list[Entry],
    ) -> None:
        backlog = len(self.buffer) + len(chunk)
        start = time.time()
        await super()._send(producer, topics, counts, partition_of, chunk)
        self.chunks.append(Chunk(start, _last_flush[0], time.time(), len(chunk), backlog))
        self.acked += len(chunk)
        if self.acked >= self.target:
            self.done.set()


class TimedConnection(FeedConnection):
    """The connection loop, remembering when its first frame arrived."""

    first_frame_at: float | None = None

    def on_frame(self, frame: str | bytes, now: float) -> int:
        if self.first_frame_at is None:
            self.first_frame_at = now
        return super().on_frame(frame, now)


def chunk_summary(chunks: Sequence[Chunk]) -> Json:
    if not chunks:
        return {"chunks": 0}
    build = sum(c.flushed - c.start for c in chunks)
    wait = sum(c.acked - c.flushed for c in chunks)
    span = chunks[-1].acked - chunks[0].start
    return {
        "chunks": len(chunks),
        "records": sum(c.records for c in chunks),
        "full_chunks": sum(c.records == CHUNK_MAX for c in chunks),
        "mean_records": round(sum(c.records for c in chunks) / len(chunks)),
        "build_ms_mean": round(build / len(chunks) * 1000, 2),
        "ack_wait_ms_mean": round(wait / len(chunks) * 1000, 2),
        "build_s": round(build, 3),
        "ack_wait_s": round(wait, 3),
        # between chunks: the sender was idle (buffer empty) or queued behind other tasks
        "between_s": round(span - build - wait, 3),
        "backlog_max": max(c.backlog for c in chunks),
    }


async def topics_ready(bootstrap: str, config: Config, timeout_s: float = 30) -> Topics:
    """Create the topics and wait until every partition has a leader.

    The sink creates missing topics itself, but its first sends to a topic created a
    moment ago meet NotLeaderForPartition and back off; that is start-up, not feed.
    """
    topics = await ensure_topics(bootstrap, config)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            described = await admin.describe_topics(list(topics.all()))
            if all(
                t["error_code"] == 0
                and t["partitions"]
                and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                await asyncio.sleep(0.5)  # leaders known, but not yet all serving
                return topics
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics {topics.prefix}.* have no leaders: {described}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


class LoopLag:
    """How late a 5 ms sleep wakes up: the time this process's event loop is not free."""

    PERIOD_S = 0.005

    def __init__(self) -> None:
        self.lags: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.PERIOD_S)
            self.lags.append(loop.time() - start - self.PERIOD_S)


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


async def until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.005)


# --- the venue process -----------------------------------------------------------------


async def venue_role(spec: Json) -> Json:
    """Serve one client; burst N pre-encoded frames, or pace stamped frames at a rate."""
    protocol: str = spec["protocol"]
    venue = make_venue(FeedSettings(**feed_settings(protocol, "ws://127.0.0.1:1/")))
    burst = spec["mode"] == "burst"
    frames = encoded_frames(protocol, spec["frames"]) if burst else []
    result: Json = {}
    finished = asyncio.Event()

    async def paced(ws: ServerConnection) -> int:
        rate, seconds = spec["rate"], spec["seconds"]
        per_slice = max(1, round(rate * SLICE_S))
        source = quotes(int(rate * seconds) + per_slice, VENUE_OF[protocol], seed=11)
        last_us = sent = 0
        start = time.time()
        for i in range(round(seconds / SLICE_S)):
            for _ in range(per_slice):
                record = next(source)
                sent_us = max(time.time_ns() // 1000, last_us + 1)
                last_us = sent_us
                record["ts"] = sent_us // 1000
                if protocol == "native":
                    record["sent_us"] = sent_us
                    text = venue.encode(record).text
                else:
                    frame = orjson.loads(venue.encode(record).text)
                    frame["u"] = sent_us
                    text = orjson.dumps(frame).decode()
                await ws.send(text)
                sent += 1
            delay = start + (i + 1) * SLICE_S - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
        return sent

    async def handler(ws: ServerConnection) -> None:
        try:
            session = venue.new_session()
            for text in venue.greeting():
                await ws.send(text)
            while not session.streaming:
                for reply in venue.answer(session, await ws.recv()):
                    await ws.send(reply)
            cpu0, t0 = time.process_time(), time.time()
            if burst:
                for text in frames:
                    await ws.send(text)
                sent = len(frames)
            else:
                sent = await paced(ws)
            t1 = time.time()
            result.update(
                frames=sent,
                first_send_at=t0,
                last_send_at=t1,
                cpu_pct=round((time.process_time() - cpu0) / max(t1 - t0, 1e-9) * 100),
            )
            await ws.wait_closed()  # the feed closes once Kafka has everything
        finally:
            finished.set()

    compression = None if spec["compression"] == "none" else "deflate"
    async with serve(handler, "127.0.0.1", 0, compression=compression, close_timeout=1.0) as srv:
        port = srv.sockets[0].getsockname()[1]
        print(orjson.dumps({"port": port}).decode(), flush=True)
        await asyncio.wait_for(finished.wait(), PROCESS_TIMEOUT_S)
    return result


# --- the feed process ------------------------------------------------------------------


async def feed_role(spec: Json) -> Json:
    """One FeedConnection into one KafkaSink until ``records`` are acknowledged."""
    install_timing()
    protocol: str = spec["protocol"]
    n: int = spec["records"]
    config = bench_config(spec["prefix"], protocol, spec["url"], n, spec["linger_ms"])
    await topics_ready(spec["bootstrap"], config)
    sink = TimedSink(config, spec["bootstrap"], target=n)
    sink_stop, feed_stop = asyncio.Event(), asyncio.Event()
    sink_task = asyncio.create_task(sink.run(sink_stop))
    await until(lambda: sink.stats.connected, 30, "the sink's producer")
    settings = config.feeds[protocol]
    conn = TimedConnection(protocol, settings, make_protocol(settings), sink.put)
    profile = cProfile.Profile() if spec.get("profile") else None
    cpu0, started = time.process_time(), time.time()
    if profile is not None:
        profile.enable()
    lag = LoopLag()
    lag_task = asyncio.create_task(lag.run())
    feed_task = asyncio.create_task(conn.run(feed_stop))
    done_task = asyncio.create_task(sink.done.wait())
    try:
        await asyncio.wait(
            [done_task, feed_task, sink_task],
            timeout=spec["timeout_s"],
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        cpu = time.process_time() - cpu0
        if profile is not None:
            profile.disable()
            profile.dump_stats(spec["profile"])
        done_task.cancel()
        lag_task.cancel()
        feed_stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(feed_task, 5)
        sink_stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sink_task, 15)
    if not sink.done.is_set():
        raise RuntimeError(f"only {sink.acked} of {n} records acknowledged")
    done_at = sink.chunks[-1].acked
    first = conn.first_frame_at or started
    s = conn.stats
    last = s.last_frame_at or done_at
    return {
        "first_frame_at": first,
        "last_frame_at": s.last_frame_at,
        "done_at": done_at,
        "cpu_s": round(cpu, 3),
        "cpu_pct": round(cpu / max(done_at - started, 1e-9) * 100),
        "frames": s.frames,
        "records": s.records,
        "bad_frames": s.bad_frames,
        "duplicates": s.duplicates,
        "reconnects": s.reconnects,
        "sent": sink.stats.sent,
        "dropped": sink.stats.dropped,
        "send_errors": sink.stats.send_errors,
        "sink": chunk_summary(sink.chunks),
        # chunks acknowledged while frames were still arriving, and after the last one
        "sink_while_receiving": chunk_summary([c for c in sink.chunks if c.acked <= last]),
        "sink_after_last_frame": chunk_summary([c for c in sink.chunks if c.acked > last]),
        "loop_lag": percentiles(lag.lags),
        "peak_rss_mib": peak_rss_mib(),
    }


async def parts_role(spec: Json) -> Json:
    """Parse, then on_frame + put, on in-memory frames; then the sink's drain alone."""
    install_timing()
    protocol: str = spec["protocol"]
    n: int = spec["frames"]
    frames = encoded_frames(protocol, n)
    config = bench_config(spec["prefix"], protocol, "ws://127.0.0.1:1/", n, spec["linger_ms"])
    settings = config.feeds[protocol]

    parser = make_protocol(settings)
    cpu0 = time.process_time()
    for frame in frames:
        parser.parse(frame)
    parse_cpu = time.process_time() - cpu0

    await topics_ready(spec["bootstrap"], config)
    sink = TimedSink(config, spec["bootstrap"], target=n)
    sink_stop = asyncio.Event()
    sink_task = asyncio.create_task(sink.run(sink_stop))
    await until(lambda: sink.stats.connected, 30, "the sink's producer")
    conn = FeedConnection(protocol, settings, make_protocol(settings), sink.put)
    # No await in this loop: the sink cannot send until every record is buffered.
    cpu0 = time.process_time()
    for frame in frames:
        conn.on_frame(frame, time.time())
    feed_cpu = time.process_time() - cpu0

    cpu0, t0 = time.process_time(), time.time()
    try:
        await asyncio.wait_for(sink.done.wait(), spec["timeout_s"])
    finally:
        drain_cpu, drain_wall = time.process_time() - cpu0, time.time() - t0
        sink_stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sink_task, 15)
    return {
        "frames": n,
        "frame_bytes_mean": round(sum(map(len, frames)) / n),
        "parse_us": round(parse_cpu / n * 1e6, 2),
        "on_frame_put_us": round(feed_cpu / n * 1e6, 2),
        "drain_wall_us": round(drain_wall / n * 1e6, 2),
        "drain_cpu_us": round(drain_cpu / n * 1e6, 2),
        "drain_records_per_s": round(n / drain_wall),
        "drain_cpu_pct": round(drain_cpu / drain_wall * 100),
        "sink": chunk_summary(sink.chunks),
    }


# --- this process: orchestration -------------------------------------------------------


class Child:
    """A role of this module in its own process; stdout carries JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    @classmethod
    async def start(cls, role: str, spec: Json, log: Path) -> Child:
        with open(log, "ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "benchmarks.feed_bench",
                "--role",
                role,
                "--spec",
                orjson.dumps(spec).decode(),
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                cwd=ROOT,
            )
        return cls(proc, log)

    async def line(self, timeout_s: float = 60) -> Json:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        if not raw:
            await self.proc.wait()
            raise RuntimeError(f"{self._failed()}")
        parsed: Json = orjson.loads(raw)
        return parsed

    async def result(self, timeout_s: float = PROCESS_TIMEOUT_S) -> Json:
        assert self.proc.stdout is not None
        out = await asyncio.wait_for(self.proc.stdout.read(), timeout_s)
        await self.proc.wait()
        lines = out.decode().strip().splitlines()
        if self.proc.returncode != 0 or not lines:
            raise RuntimeError(self._failed())
        parsed: Json = orjson.loads(lines[-1])
        return parsed

    def _failed(self) -> str:
        tail = self.log.read_text(errors="replace")[-2000:]
        return f"subprocess exited with {self.proc.returncode}; {self.log}:\n{tail}"

    async def reap(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@dataclass
class Bench:
    bootstrap: str
    tmp: Path
    run_id: str
    frames: int
    rate: int
    seconds: float
    compression: str
    linger_ms: int | None
    profile: bool

    def prefix(self, protocol: str, phase: str) -> str:
        return f"feedbench-{self.run_id}-{protocol}-{phase}"

    def log(self, protocol: str, phase: str, role: str) -> Path:
        return self.tmp / f"{protocol}-{phase}-{role}.log"

    async def parts(self, protocol: str) -> Json:
        spec = {
            "protocol": protocol,
            "frames": self.frames,
            "prefix": self.prefix(protocol, "parts"),
            "bootstrap": self.bootstrap,
            "linger_ms": self.linger_ms,
            "timeout_s": PROCESS_TIMEOUT_S - 30,
        }
        child = await Child.start("parts", spec, self.log(protocol, "parts", "feed"))
        try:
            return await child.result()
        finally:
            await child.reap()

    async def throughput(self, protocol: str) -> Json:
        venue = await Child.start(
            "venue",
            {
                "protocol": protocol,
                "mode": "burst",
                "frames": self.frames,
                "compression": self.compression,
            },
            self.log(protocol, "throughput", "venue"),
        )
        feed: Child | None = None
        profile = str(self.tmp / f"{protocol}-feed.prof") if self.profile else ""
        try:
            port = (await venue.line())["port"]
            spec = {
                "protocol": protocol,
                "records": self.frames,
                "url": f"ws://127.0.0.1:{port}/",
                "prefix": self.prefix(protocol, "throughput"),
                "bootstrap": self.bootstrap,
                "linger_ms": self.linger_ms,
                "timeout_s": PROCESS_TIMEOUT_S - 30,
                "profile": profile,
            }
            feed = await Child.start("feed", spec, self.log(protocol, "throughput", "feed"))
            fed = await feed.result()
            sent = await venue.result(30)
        finally:
            for child in (feed, venue):
                if child is not None:
                    await child.reap()
        seconds = fed["done_at"] - fed["first_frame_at"]
        receiving = (fed["last_frame_at"] or fed["done_at"]) - fed["first_frame_at"]
        out: Json = {
            "frames": self.frames,
            "seconds": round(seconds, 3),
            "frames_per_s": round(self.frames / seconds),
            # when the last frame was in; what is left after it is the sink catching up
            "receive_s": round(receiving, 3),
            "tail_after_last_frame_s": round(seconds - receiving, 3),
            "venue_send_s": round(sent["last_send_at"] - sent["first_send_at"], 3),
            "venue_cpu_pct": sent["cpu_pct"],
            "feed_cpu_pct": fed["cpu_pct"],
            "peak_rss_mib": fed["peak_rss_mib"],
            "records": fed["records"],
            "dropped": fed["dropped"],
            "send_errors": fed["send_errors"],
            "bad_frames": fed["bad_frames"],
            "reconnects": fed["reconnects"],
            "sink": fed["sink"],
            "sink_while_receiving": fed["sink_while_receiving"],
            "sink_after_last_frame": fed["sink_after_last_frame"],
            "loop_lag": fed["loop_lag"],
        }
        if profile and Path(profile).exists():
            buf = io.StringIO()
            stats = pstats.Stats(profile, stream=buf)
            stats.sort_stats("tottime").print_stats(20)
            print(f"--- {protocol} feed, throughput run, by own time ---", file=sys.stderr)
            print(buf.getvalue(), file=sys.stderr)
        return out

    async def latency(self, protocol: str) -> Json:
        prefix = self.prefix(protocol, "latency")
        topics = await topics_ready(self.bootstrap, bench_config(prefix, protocol, "ws://x/", 0))
        consumer = AIOKafkaConsumer(
            topics.ticks,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=FETCH_WAIT_MS,
        )
        await consumer.start()
        arrivals: list[tuple[float, bytes]] = []
        stop = asyncio.Event()

        async def consume() -> None:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=100)
                now = time.time()
                for messages in batches.values():
                    arrivals.extend((now, m.value) for m in messages)

        reader = asyncio.create_task(consume())
        expected = round(self.seconds / SLICE_S) * max(1, round(self.rate * SLICE_S))
        venue = await Child.start(
            "venue",
            {
                "protocol": protocol,
                "mode": "paced",
                "rate": self.rate,
                "seconds": self.seconds,
                "compression": self.compression,
            },
            self.log(protocol, "latency", "venue"),
        )
        feed: Child | None = None
        try:
            await until(lambda: bool(consumer.assignment()), 10, "the consumer's partitions")
            port = (await venue.line())["port"]
            spec = {
                "protocol": protocol,
                "records": expected,
                "url": f"ws://127.0.0.1:{port}/",
                "prefix": prefix,
                "bootstrap": self.bootstrap,
                "linger_ms": self.linger_ms,
                "timeout_s": self.seconds + 60,
            }
            feed = await Child.start("feed", spec, self.log(protocol, "latency", "feed"))
            fed = await feed.result()
            await venue.result(30)
            with contextlib.suppress(TimeoutError):
                await until(lambda: len(arrivals) >= expected, 10, "every record")
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader, 5)
            await consumer.stop()
            for child in (feed, venue):
                if child is not None:
                    await child.reap()
        stamp = "sent_us" if protocol == "native" else "seq"
        stamped = [(now, orjson.loads(value)) for now, value in arrivals]
        first_us = min(r[stamp] for _, r in stamped)
        total, to_feed = [], []
        for now, record in stamped:
            sent_us = record[stamp]
            if sent_us < first_us + WARMUP_S * 1e6:
                continue
            total.append(now - sent_us / 1e6)
            to_feed.append(record["recv_ts"] / 1000 - sent_us / 1e6)
        to_feed_pct = percentiles(to_feed)
        return {
            "rate": self.rate,
            "seconds": self.seconds,
            "records": len(arrivals),
            "expected": expected,
            "samples": len(total),
            **percentiles(total),
            # recv_ts is whole milliseconds, so this leg is +-1 ms
            "to_feed_p50_ms": to_feed_pct["p50_ms"],
            "to_feed_p99_ms": to_feed_pct["p99_ms"],
            "peak_rss_mib": fed["peak_rss_mib"],
            "feed_cpu_pct": fed["cpu_pct"],
            "loop_lag": fed["loop_lag"],
            "sink": fed["sink"],
        }

    async def cleanup(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            ours = f"feedbench-{self.run_id}-"
            mine = [t for t in await admin.list_topics() if t.startswith(ours)]
            if mine:
                await admin.delete_topics(mine)
        finally:
            await admin.close()


async def run_all(bench: Bench, protocols: Sequence[str], keep_topics: bool) -> Json:
    results: Json = {}
    try:
        for protocol in protocols:
            print(f"{protocol}: parts on {bench.frames:,} frames ...", file=sys.stderr)
            parts = await bench.parts(protocol)
            print(f"{protocol}: throughput on {bench.frames:,} frames ...", file=sys.stderr)
            tput = await bench.throughput(protocol)
            print(f"{protocol}: latency at {bench.rate:,} frames/s ...", file=sys.stderr)
            lat = await bench.latency(protocol)
            results[protocol] = {"throughput": tput, "latency": lat, "parts": parts}
    finally:
        if not keep_topics:
            with contextlib.suppress(Exception):
                await bench.cleanup()
    return results


def report(results: Json, protocols: Sequence[str]) -> None:
    linger = results["linger_ms"]
    if linger is None:
        linger = ProducerSettings().linger_ms
    print(f"feed benchmark, {results['date']}, {results['machine']}")
    print(f"  {results['platform']}; broker {results['bootstrap']}; load {results['load']}")
    print(
        f"  one connection, WebSocket compression {results['ws_compression']},"
        f" producer: lz4, linger {linger} ms, acks=all, chunks of {CHUNK_MAX:,}"
    )
    head = (
        f"  {'protocol':9}{'frames/s':>10}{'(N in s)':>18}{'p50':>8}{'p99':>8}"
        f"{'p99.9':>8}{'max ms':>8}{'RSS MiB tput/lat':>18}"
    )
    print(head)
    for protocol in protocols:
        t, lat = results[protocol]["throughput"], results[protocol]["latency"]
        size = f"{t['frames']:,} in {t['seconds']}"
        rss = f"{t['peak_rss_mib']} / {lat['peak_rss_mib']}"
        print(
            f"  {protocol:9}{t['frames_per_s']:>10,}{size:>18}"
            f"{lat['p50_ms']:>8}{lat['p99_ms']:>8}{lat['p999_ms']:>8}{lat['max_ms']:>8}{rss:>18}"
        )
    print(
        f"  latency: server send -> readable in Kafka, at {results['rate']:,} frames/s for"
        f" {results['seconds']:g} s (first {WARMUP_S:g} s not counted)"
    )
    print("  where the time goes (us per frame):")
    for protocol in protocols:
        p, t = results[protocol]["parts"], results[protocol]["throughput"]
        during, after, lag = t["sink_while_receiving"], t["sink_after_last_frame"], t["loop_lag"]
        print(
            f"    {protocol:8} CPU: parse {p['parse_us']}, on_frame+put {p['on_frame_put_us']},"
            f" sink {p['drain_cpu_us']}; sink alone {p['drain_wall_us']} wall"
            f" ({p['drain_records_per_s']:,} records/s); end to end"
            f" {round(1e6 / t['frames_per_s'], 2)} (feed CPU {t['feed_cpu_pct']}%,"
            f" venue CPU {t['venue_cpu_pct']}%)"
        )
        print(
            f"    {'':8} while frames arrived ({t['receive_s']} s): Kafka acked"
            f" {during.get('records', 0):,} records in {during['chunks']} chunks, ack wait"
            f" {during.get('ack_wait_ms_mean')} ms/chunk; event-loop lag p50 {lag['p50_ms']},"
            f" max {lag['max_ms']} ms"
        )
        print(
            f"    {'':8} after the last frame ({t['tail_after_last_frame_s']} s):"
            f" {after.get('records', 0):,} records in {after['chunks']} chunks, ack wait"
            f" {after.get('ack_wait_ms_mean')} ms/chunk; backlog max"
            f" {t['sink']['backlog_max']:,}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000, help="throughput run size")
    parser.add_argument("--rate", type=int, default=2000, help="latency run, frames/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency run length")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    parser.add_argument("--ws-compression", choices=("deflate", "none"), default="deflate")
    parser.add_argument("--linger-ms", type=int, help="producer.linger_ms (default: config's)")
    parser.add_argument("--profile", action="store_true", help="cProfile the throughput feeds")
    parser.add_argument("--keep-topics", action="store_true")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--role", choices=("venue", "feed", "parts"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role is not None:
        roles = {"venue": venue_role, "feed": feed_role, "parts": parts_role}
        out = asyncio.run(roles[args.role](orjson.loads(args.spec)))
        print(orjson.dumps(out).decode(), flush=True)
        return
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        sys.exit("feed_bench: KAFKA_BOOTSTRAP is not set (run it with `make bench`)")
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        sys.exit(f"feed_bench: unknown protocol(s) {sorted(unknown)}; choose from {PROTOCOLS}")
    results: Json = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "bootstrap": bootstrap,
        "ws_compression": args.ws_compression,
        "linger_ms": args.linger_ms,
        "rate": args.rate,
        "seconds": args.seconds,
    }
    load0 = os.getloadavg()[0]
    wall0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="feed-bench-") as tmp:
        bench = Bench(
            bootstrap=bootstrap,
            tmp=Path(tmp),
            run_id=uuid.uuid4().hex[:8],
            frames=args.frames,
            rate=args.rate,
            seconds=args.seconds,
            compression=args.ws_compression,
            linger_ms=args.linger_ms,
            profile=args.profile,
        )
        results.update(asyncio.run(run_all(bench, protocols, args.keep_topics)))
    results["load"] = f"{load0:.2f} -> {os.getloadavg()[0]:.2f} (1-min average)"
    results["bench_s"] = round(time.monotonic() - wall0, 1)
    if not args.json:
        report(results, protocols)
    print(orjson.dumps(results).decode())


if __name__ == "__main__":
    main()
