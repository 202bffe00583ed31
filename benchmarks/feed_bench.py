"""Feed benchmark: WebSocket frames -> FeedConnection -> KafkaSink -> the real broker.

    KAFKA_BOOTSTRAP=host:port python -m benchmarks.feed_bench [--frames N] [--rate R]

For each protocol (``native``, ``binance``) three separate processes take part: a
*venue* (a local websockets server speaking the protocol, frames written by the
simulator's encoders, simulator/frames.py), the *feed* (one ``FeedConnection``
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
import io
import os
import platform
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from arbstream.agents.settings import ProducerSettings
from arbstream.agents.sink import CHUNK_MAX
from arbstream.supervisor import ChildProcess
from benchmarks.cleanup import drop_topics
from benchmarks.feed_roles import topics_ready, until
from benchmarks.feed_workload import (
    FETCH_WAIT_MS,
    PROCESS_TIMEOUT_S,
    PROTOCOLS,
    ROOT,
    SLICE_S,
    WARMUP_S,
    Json,
    bench_config,
)
from benchmarks.kafka import bench_kafka
from benchmarks.stats import percentiles

# --- this process: orchestration -------------------------------------------------------


class Child:
    """A role of benchmarks.feed_roles in its own process; its stdout carries JSON lines
    (read in a thread: the supervisor's pipe is a plain file)."""

    def __init__(self, process: ChildProcess) -> None:
        self.process = process
        stdout = process.proc.stdout
        assert stdout is not None
        self._stdout = stdout

    @classmethod
    async def start(cls, role: str, spec: Json, log: Path) -> Child:
        args = [sys.executable, "-m", "benchmarks.feed_roles", "--role", role]
        args += ["--spec", orjson.dumps(spec).decode()]
        return cls(ChildProcess(args, log, name=role, pipe_stdout=True, cwd=ROOT))

    async def line(self, timeout_s: float = 60) -> Json:
        raw = await asyncio.wait_for(asyncio.to_thread(self._stdout.readline), timeout_s)
        if not raw:
            raise RuntimeError(self._failed(await asyncio.to_thread(self.process.wait, 10)))
        parsed: Json = orjson.loads(raw)
        return parsed

    async def result(self, timeout_s: float = PROCESS_TIMEOUT_S) -> Json:
        out = await asyncio.wait_for(asyncio.to_thread(self._stdout.read), timeout_s)
        status = await asyncio.to_thread(self.process.wait, 10)
        lines = out.decode().strip().splitlines()
        if status != 0 or not lines:
            raise RuntimeError(self._failed(status))
        parsed: Json = orjson.loads(lines[-1])
        return parsed

    def _failed(self, status: int) -> str:
        return f"subprocess exited with {status}; {self.process.log_path}:\n{self.process.tail(30)}"

    async def reap(self) -> None:
        await asyncio.to_thread(self.process.kill)


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
        consumer = bench_kafka(self.bootstrap).consumer(
            topics.ticks,
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
        await drop_topics(self.bootstrap, f"feedbench-{self.run_id}-")


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
    args = parser.parse_args()
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
