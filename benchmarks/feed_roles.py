"""The feed benchmark's processes: a venue, a feed (one FeedConnection into one KafkaSink,
instrumented without changing them), and the parts run; each prints one JSON line.

    python -m benchmarks.feed_roles --role venue|feed|parts --spec JSON

(benchmarks/feed_bench.py starts them and explains the benchmark.)"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve

from arbstream.agents import sink as sink_module
from arbstream.agents.kafka.topics import Topics, prepare
from arbstream.agents.outputs import KeyPlacement, OutputBatches
from arbstream.agents.sink import CHUNK_MAX, KafkaSink, Pending
from arbstream.config import Config
from arbstream.feeds.connection import FeedConnection
from arbstream.feeds.protocols import make_protocol
from arbstream.feeds.settings import FeedSettings
from arbstream.simulator.frames import make_venue
from benchmarks.feed_workload import (
    PROCESS_TIMEOUT_S,
    SLICE_S,
    VENUE_OF,
    Json,
    bench_config,
    encoded_frames,
    feed_settings,
    quotes,
)
from benchmarks.kafka import bench_kafka, wait_for_leaders
from benchmarks.stats import percentiles

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
    vars(sink_module)["OutputBatches"] = _TimedBatches


class TimedSink(KafkaSink):
    """The sink, recording every chunk; ``done`` is set once ``target`` records are acked."""

    def __init__(self, config: Config, bootstrap: str, target: int) -> None:
        super().__init__(config, bench_kafka(bootstrap))
        self.target = target
        self.acked = 0
        self.chunks: list[Chunk] = []
        self.done = asyncio.Event()

    async def _send(
        self,
        producer: Any,
        topics: Topics,
        counts: dict[str, int],
        placement: KeyPlacement,
        chunk: list[Pending],
    ) -> None:
        backlog = len(self.buffer) + len(chunk)
        start = time.time()
        await super()._send(producer, topics, counts, placement, chunk)
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
    kafka = bench_kafka(bootstrap)
    counts = await prepare(kafka, config, runtime=None)  # the feeds' topics, made
    admin = kafka.admin()
    await admin.start()
    try:
        await wait_for_leaders(admin, counts, timeout_s)
    finally:
        await admin.close()
    await asyncio.sleep(0.5)  # leaders known, but not yet all serving
    return Topics(config.topic_prefix)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("venue", "feed", "parts"), required=True)
    parser.add_argument("--spec", required=True)
    args = parser.parse_args()
    roles = {"venue": venue_role, "feed": feed_role, "parts": parts_role}
    out = asyncio.run(roles[args.role](orjson.loads(args.spec)))
    print(orjson.dumps(out).decode(), flush=True)


if __name__ == "__main__":
    main()
