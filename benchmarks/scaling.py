"""How cost grows with the work: replay and worker cost per tick, and memory, as the
market grows.

Three series, each changing one dimension of the standard workload (benchmarks/
workload.py) and keeping the rest:

* **venues** 5, 10, 20, 40 (one instrument, 8 partitions): pairs and routes grow with
  the square (a route between every two venues, so 10, 45, 190, 780 of each);
* **instruments** 1, 10, 100 (5 venues): each instrument its own pairs and routes;
* **partitions** 1, 8, 32 (5 venues, 32 instruments so that every partition has work),
  at a fixed offered rate: what a partition costs when the same load is spread thinner.

Replay figures are the whole ``arbstream replay`` process (CPU time and peak resident
memory of that process alone, ``os.wait4``); worker figures are the worker process's CPU
time (from /proc) over the ticks it processed, counted from when it has joined its
group, and its peak resident memory; for the partitions series, its commits per
second too. CPU time, not wall time, so that a busy shared machine changes the figures
little.

    KAFKA_BOOTSTRAP=host:port python -m benchmarks.scaling [--replay-only] [--json]

(``scripts/with-kafka.sh`` starts a broker for it.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from arbstream.agents.kafka.topics import Topics
from arbstream.agents.produce import produce_lines, send_line
from arbstream.config import load_config
from arbstream.supervisor import ChildProcess
from benchmarks.cleanup import drop_topics_now
from benchmarks.kafka import bench_kafka, ensure_led_topics
from benchmarks.offered import collector_off, paced, settled
from benchmarks.pipeline_bench import (
    committed_all,
    end_offsets,
    phase_quantiles,
    start_worker,
)
from benchmarks.stats import peak_rss_mib
from benchmarks.workload import KG, START_TS, fx_line, quote_line

REPLAY_TICKS = 100_000
WORKER_TICKS = 60_000
OFFERED_RATE = 2_000
OFFERED_SECONDS = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def venue_names(n: int) -> list[str]:
    return [f"V{i:02d}" for i in range(n)]


def config_text(venues: int, instruments: int, partitions: int, prefix: str) -> str:
    """The standard workload's settings, ``venues`` venues (every third in CNY/kg with 13%
    VAT, the rest in USD/oz), a route between every two of them."""
    parts = [
        f'topic_prefix = "{prefix}"',
        "[defaults]\nstale_ms = 5000\nfx_stale_ms = 60000\nwindows_ms = [60000, 300000]\n"
        "spread_emit_ms = 1000",
        "[arb]\nopen_usd = 0.50\nclose_usd = 0.25\npersist_ms = 1000\nupdate_usd = 0.10",
        "[wide]\nopen_bps = 500\nclose_bps = 400",
        f"[kafka]\npartitions = {partitions}\nreplication = 1",
        "[metrics]\ninstruments = [" + ", ".join(f'"I{i:03d}"' for i in range(instruments)) + "]",
    ]
    names = venue_names(venues)
    for i, name in enumerate(names):
        if i % 3 == 2:
            parts.append(
                f'[venues.{name}]\ncurrency = "CNY"\nunit = "kg"\nvat = 0.13\nfee_bps = 1.0'
            )
        else:
            parts.append(f'[venues.{name}]\ncurrency = "USD"\nunit = "oz"\nfee_bps = 1.0')
    for a in range(venues):
        for b in range(a + 1, venues):
            parts.append(f'[[routes]]\nbuy = "{names[a]}"\nsell = "{names[b]}"\ncost_usd = 2.0')
    return "\n\n".join(parts) + "\n"


def scaled_ticks(n: int, venues: int, instruments: int, seed: int = 7) -> Iterator[bytes]:
    """``n`` ticks: every venue quotes every instrument in turn, one millisecond apart, with
    a USDCNY record every 1,000 ticks (benchmarks/workload.py's prices)."""
    rng = random.Random(seed)
    gauss = rng.gauss
    refs = [78.0 + i for i in range(instruments)]
    fx = 7.10
    for i in range(n):
        ts = START_TS + i
        if i % 1000 == 0:
            fx *= 1 + gauss(0, 0.0002)
            yield fx_line(fx, ts)
            continue
        v, k = i % venues, (i // venues) % instruments
        refs[k] *= 1 + gauss(0, 0.00002)
        mid = refs[k] + 0.3 * (v % 7) + gauss(0, 0.05)
        half = 0.005 + abs(gauss(0, 0.01))
        scale = 1.13 * fx * KG if v % 3 == 2 else None
        yield quote_line(b"V%02d" % v, b"I%03d" % k, mid - half, mid + half, ts, scale)


def replay_cost(tmp: Path, venues: int, instruments: int) -> dict[str, Any]:
    """CPU microseconds per tick and peak RSS of one whole ``arbstream replay``."""
    config = tmp / f"replay-{venues}-{instruments}.toml"
    config.write_text(config_text(venues, instruments, 8, "scaling"))
    data = tmp / f"replay-{venues}-{instruments}.jsonl"
    data.write_bytes(b"\n".join(scaled_ticks(REPLAY_TICKS, venues, instruments)) + b"\n")
    out = tmp / "replay-out.jsonl"
    command = [sys.executable, "-m", "arbstream.cli", "replay", str(data), "--config",
               str(config), "--output", str(out)]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"replay failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    cpu = usage.ru_utime + usage.ru_stime
    outputs = sum(1 for _ in out.open("rb"))
    return {
        "ticks": REPLAY_TICKS,
        "cpu_us_per_tick": round(1e6 * cpu / REPLAY_TICKS, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "outputs": outputs,
    }


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _deployment(tmp: Path, venues: int, instruments: int, partitions: int) -> tuple[Path, Any]:
    prefix = f"scale{uuid.uuid4().hex[:8]}"
    path = tmp / f"{prefix}.toml"
    path.write_text(config_text(venues, instruments, partitions, prefix))
    return path, load_config(path)


@contextlib.contextmanager
def _joined_worker(
    bootstrap: str, tmp: Path, venues: int, instruments: int, partitions: int
) -> Iterator[tuple[ChildProcess, int, Topics]]:
    """A worker on topics of its own, once it has joined its group and loaded its (empty)
    partitions: (its process, its metrics port, its topics); stopped and its topics
    deleted after."""
    path, config = _deployment(tmp, venues, instruments, partitions)
    topics = Topics(config.topic_prefix)
    asyncio.run(ensure_led_topics(bootstrap, config))
    log = tmp / f"worker-{venues}-{instruments}-{partitions}.log"
    proc, port = start_worker(path, "batched", bootstrap, log)
    try:
        time.sleep(12)  # join, assignment and (empty) recovery
        yield proc, port, topics
    finally:
        proc.stop(60)
        drop_topics_now(bootstrap, config.topic_prefix)


def worker_preloaded(
    bootstrap: str, tmp: Path, venues: int, instruments: int, partitions: int = 8
) -> dict[str, Any]:
    """The worker's CPU per tick and peak RSS on ``WORKER_TICKS`` ticks sent as fast as
    this process can, once the worker has joined its group: the CPU counted is the
    batches' alone."""
    with _joined_worker(bootstrap, tmp, venues, instruments, partitions) as (proc, _, topics):
        before = cpu_seconds(proc.pid)
        lines = scaled_ticks(WORKER_TICKS, venues, instruments)
        asyncio.run(produce_lines(lines, topics, bench_kafka(bootstrap)))
        ends = asyncio.run(end_offsets(bootstrap, topics.ticks, "read_uncommitted"))
        deadline = time.time() + 600
        while not asyncio.run(committed_all(bootstrap, topics.group, ends)):
            if not proc.alive() or time.time() > deadline:
                raise RuntimeError(f"the worker did not finish; see {tmp}")
            time.sleep(0.05)
        cpu = cpu_seconds(proc.pid) - before
        peak = peak_rss_mib(proc.pid)
    return {
        "ticks": WORKER_TICKS,
        "cpu_us_per_tick": round(1e6 * cpu / WORKER_TICKS, 2),
        "peak_rss_mib": peak,
    }


def worker_offered(bootstrap: str, tmp: Path, partitions: int) -> dict[str, Any]:
    """The worker at ``OFFERED_RATE`` ticks/s over 5 venues and 32 instruments: CPU per
    tick while the load runs, and its batches (transactions) per second."""
    venues, instruments = 5, 32
    with _joined_worker(bootstrap, tmp, venues, instruments, partitions) as (proc, port, topics):
        before = cpu_seconds(proc.pid), _commits(port)
        n = asyncio.run(_offer(bootstrap, topics, venues, instruments))
        time.sleep(3.0)  # drain
        cpu = cpu_seconds(proc.pid) - before[0]
        transactions = _commits(port) - before[1]
        peak = peak_rss_mib(proc.pid)
    return {
        "ticks": n,
        "rate": OFFERED_RATE,
        "cpu_us_per_tick": round(1e6 * cpu / n, 2),
        "transactions_per_s": round(transactions / (OFFERED_SECONDS + 3.0)),
        "peak_rss_mib": peak,
    }


def _commits(port: int) -> int:
    """The worker's commits so far: the count of its ``engine`` phase, as pipeline_bench
    reads the phases."""
    return int(phase_quantiles(port).get("engine", {}).get("transactions", 0))


async def _offer(bootstrap: str, topics: Topics, venues: int, instruments: int) -> int:
    producer = bench_kafka(bootstrap).producer(acks="all", linger_ms=1)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topics.ticks))
        source = scaled_ticks(int(OFFERED_RATE * OFFERED_SECONDS) + 1000, venues, instruments)
        n = 0
        pending: list[asyncio.Future[object]] = []
        with collector_off():
            async for count in paced(OFFERED_RATE, OFFERED_SECONDS):
                for _ in range(count):
                    await send_line(producer, topics, partitions, next(source), pending)
                    n += 1
                pending = settled(pending)
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return n


def table(results: dict[str, Any]) -> str:
    lines = [f"scaling, {results['date']}, {results['machine']}"]
    lines.append(
        f"  {'series':28} {'outputs/tick':>12} {'replay us/tick':>14} {'replay MiB':>10}"
        f" {'worker us/tick':>14} {'commits/s':>10} {'worker MiB':>10}"
    )
    for row in results["rows"]:
        replay, worker = row.get("replay", {}), row.get("worker", {})
        rate = worker.get("transactions_per_s", "")
        per_tick = round(replay["outputs"] / replay["ticks"], 3) if replay else ""
        lines.append(
            f"  {row['label']:28} {per_tick:>12} {replay.get('cpu_us_per_tick', ''):>14} "
            f"{replay.get('peak_rss_mib', ''):>10} {worker.get('cpu_us_per_tick', ''):>14} "
            f"{rate:>10} {worker.get('peak_rss_mib', ''):>10}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replay-only", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "")
    if not bootstrap and not args.replay_only:
        sys.exit("scaling: KAFKA_BOOTSTRAP is not set (or pass --replay-only)")
    results: dict[str, Any] = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}",
        "rows": [],
    }
    series = [(f"venues {v} (pairs {v * (v - 1) // 2})", v, 1) for v in (5, 10, 20, 40)]
    series += [(f"instruments {k} (5 venues)", 5, k) for k in (10, 100)]
    with tempfile.TemporaryDirectory(prefix="scaling-") as tmp_name:
        tmp = Path(tmp_name)
        for label, venues, instruments in series:
            print(f"scaling: {label} ...", file=sys.stderr)
            row: dict[str, Any] = {"label": label, "venues": venues, "instruments": instruments}
            row["replay"] = replay_cost(tmp, venues, instruments)
            if not args.replay_only:
                row["worker"] = worker_preloaded(bootstrap, tmp, venues, instruments)
            results["rows"].append(row)
        if not args.replay_only:
            for partitions in (1, 8, 32):
                label = f"partitions {partitions} ({OFFERED_RATE:,}/s)"
                print(f"scaling: {label} ...", file=sys.stderr)
                worker = worker_offered(bootstrap, tmp, partitions)
                results["rows"].append({"label": label, "partitions": partitions, "worker": worker})
    if args.json:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    else:
        print(table(results))


if __name__ == "__main__":
    main()
