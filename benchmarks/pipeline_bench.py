"""Pipeline benchmark: the worker on the real broker, against a naive agent and quix-streams.

For each agent (``batched``: ``arbstream worker``, exactly-once, or at-least-once with
``--guarantee at-least-once``; ``faust``: ``arbstream
worker --runtime faust``, at-least-once with duplicates identifiable by ``seq``;
``naive``: one await per event and per output, Faust's own send and table API,
at-least-once; ``quix``: the core computation written with quix-streams, exactly-once,
benchmarks/quix_peer.py, run by the interpreter of .venv-quix, which ``make quix``
installs), in the same run:

* **throughput**: the standard workload (benchmarks/workload.py) is loaded into a fresh
  ticks topic first, then one worker starts. Ticks/s = ticks / (time the last offset is
  committed - timestamp of the first output record), so start-up is not counted.
* **latency** at an offered rate (default 5,000 ticks/s, ``spread_emit_ms = 0`` so that
  every tick has outputs): ticks are produced in 10 ms slices to a running worker; a
  ``read_committed`` consumer of the spreads and signals topics takes, for every output
  record, its arrival time minus the send time of the tick whose ``ts`` it carries.
  The first second is warm-up and not counted.

Needs ``KAFKA_BOOTSTRAP`` (``make bench`` starts a broker). ``--agent`` picks the agents
(``all``, the default, runs the four; ``both`` the worker and the naive agent).
``--guarantee`` picks the worker's (``batched``) guarantee, which the results name.
``--latency-only`` and ``--throughput-only`` skip the other run. ``--profile`` also
writes a cProfile of the batched worker's throughput run and prints its top functions.
The naive agent and the quix peer have no transaction phases; the group whose commits
end a throughput run is the agent's own (:func:`group_of`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import pstats
import re
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import date
from pathlib import Path
from socket import socket
from typing import Any

import orjson
from aiokafka import TopicPartition
from aiokafka.errors import (
    CoordinatorLoadInProgressError,
    GroupCoordinatorNotAvailableError,
    NotCoordinatorForGroupError,
)
from prometheus_client.parser import text_string_to_metric_families

from arbstream.agents.kafka.topics import Topics
from arbstream.agents.produce import produce_lines, send_line
from arbstream.config import Config, load_config
from arbstream.supervisor import ChildProcess
from benchmarks.cleanup import drop_topics_now
from benchmarks.kafka import bench_kafka, ensure_led_topics
from benchmarks.offered import (
    WARM_UP_S,
    collector_off,
    paced,
    settled,
    tick_ts,
    time_receipts,
)
from benchmarks.quix_peer import QUIX_KAFKA_CONFIG
from benchmarks.quix_peer import consumer_group as quix_consumer_group
from benchmarks.stats import peak_rss_mib, percentiles
from benchmarks.workload import CONFIG_TOML, ticks

#: The output consumer's fetch_max_wait_ms (aiokafka's default is 500).
FETCH_WAIT_MS = int(os.environ.get("BENCH_FETCH_WAIT_MS", "5"))
#: The quix peer and the interpreter of its own virtualenv (scripts/install-quix.sh).
REPO = Path(__file__).resolve().parent.parent
QUIX_PEER = REPO / "benchmarks" / "quix_peer.py"
QUIX_PYTHON = Path(os.environ.get("BENCH_QUIX_PYTHON", REPO / ".venv-quix" / "bin" / "python"))
#: The batched worker's guarantee (``--guarantee``; a list, so that ``main`` can set it).
GUARANTEE = ["exactly-once"]
#: What ``--agent`` runs.
AGENTS = {
    "batched": ("batched",),
    "naive": ("naive",),
    "quix": ("quix",),
    "faust": ("faust",),
    "both": ("batched", "naive"),
    "all": ("batched", "faust", "naive", "quix"),
}

WORKER_CODE = """
import cProfile, atexit, os, sys
config_path, mode, port, profile, bootstrap = sys.argv[1:6]
if profile:
    prof = cProfile.Profile()
    prof.enable()
    atexit.register(lambda: (prof.disable(), prof.dump_stats(profile)))
if os.environ.get("BENCH_TXN_RETRY_S"):
    # An A/B switch: the worker's pause before a new transaction asks again for its
    # first partition (agents/kafka/aiokafka_private.py; aiokafka's own is 0.02).
    from arbstream.agents.kafka import aiokafka_private
    aiokafka_private.FIRST_PARTITION_RETRY_S = float(os.environ["BENCH_TXN_RETRY_S"])
if os.environ.get("BENCH_QUIET_COMMIT_S"):
    # An A/B switch: how long quiet batches may wait for a commit (0: never held).
    import dataclasses
    import arbstream.agents.commit_policy as policy
    hold_s = float(os.environ["BENCH_QUIET_COMMIT_S"])
    policy.WORKER_RULES = dataclasses.replace(policy.WORKER_RULES, hold_quiet_s=hold_s)
if mode == "naive":
    from benchmarks.naive_faust import main
    sys.argv = [sys.argv[0], config_path, bootstrap, port]
    main()
else:
    from arbstream.agents.settings import WorkerSettings
    from arbstream.config import load_config
    from arbstream.worker_process import run_worker
    from benchmarks.kafka import bench_kafka
    kafka = bench_kafka(bootstrap)
    settings = WorkerSettings(
        kafka=kafka,
        web_port=int(port),
        web_host="127.0.0.1",
        guarantee=os.environ.get("BENCH_GUARANTEE", "exactly-once"),
    )
    loglevel = os.environ.get("BENCH_WORKER_LOGLEVEL", "warning")
    if mode == "faust":
        from arbstream.faust_process import run_faust_worker
        run_faust_worker(load_config(config_path), settings, loglevel)
    else:
        run_worker(load_config(config_path), settings, loglevel)
"""


def deployment(tmp: Path, spread_emit_ms: int | None = None) -> tuple[Path, Config]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    text = re.sub(r"(?m)^topic_prefix = .*$", f'topic_prefix = "{prefix}"', CONFIG_TOML)
    if spread_emit_ms is not None:
        text = re.sub(r"(?m)^spread_emit_ms = .*$", f"spread_emit_ms = {spread_emit_ms}", text)
    path = tmp / f"{prefix}.toml"
    path.write_text(text)
    return path, load_config(path)


def start_worker(
    config_path: Path, mode: str, bootstrap: str, log: Path, profile: str = ""
) -> tuple[ChildProcess, int]:
    """The worker process and its web (metrics) port."""
    with socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if mode == "quix":
        if not QUIX_PYTHON.exists():
            raise RuntimeError(f"no {QUIX_PYTHON}: run `make quix` (scripts/install-quix.sh)")
        args = [str(QUIX_PYTHON), str(QUIX_PEER), str(config_path), bootstrap, str(port)]
        # the peer imports nothing of arbstream: its Kafka security, as librdkafka keys
        security = bench_kafka(bootstrap).security.librdkafka()
        env = {**os.environ, QUIX_KAFKA_CONFIG: orjson.dumps(security).decode()}
        return ChildProcess(args, log, name=mode, env=env), port
    args = [str(config_path), mode, str(port), profile, bootstrap]
    env = {**os.environ, "BENCH_GUARANTEE": GUARANTEE[0]}
    return ChildProcess([sys.executable, "-c", WORKER_CODE, *args], log, name=mode, env=env), port


def group_of(mode: str, config: Config) -> str:
    """The consumer group whose committed offsets say how far ``mode``'s agent got."""
    if mode == "quix":
        return quix_consumer_group(config.topic_prefix)
    topics = Topics(config.topic_prefix)
    return topics.faust_group if mode == "faust" else topics.group


def phase_quantiles(port: int) -> dict[str, dict[str, float | int]]:
    """p50 and p99 (ms, interpolated in the buckets as Prometheus's histogram_quantile
    does) and the count of each transaction phase, from the worker's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    buckets: dict[str, list[tuple[float, float]]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "arbstream_transaction_phase_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets.setdefault(sample.labels["phase"], []).append((bound, sample.value))
    out: dict[str, dict[str, float | int]] = {}
    for phase, cumulative in buckets.items():
        cumulative.sort()
        total = cumulative[-1][1]
        out[phase] = {"transactions": int(total)}
        for name, q in (("p50_ms", 0.5), ("p99_ms", 0.99)):
            out[phase][name] = round(1000 * _bucket_quantile(cumulative, q * total), 2)
    return out


def _bucket_quantile(cumulative: list[tuple[float, float]], rank: float) -> float:
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            width = count - lower_count
            # (an empty histogram: rank 0 in a bucket of no count, at its lower bound)
            fraction = (rank - lower_count) / width if width else 0.0
            return lower_bound + (bound - lower_bound) * fraction
        lower_bound, lower_count = bound, count
    return lower_bound


async def committed_all(bootstrap: str, group: str, ends: dict[TopicPartition, int]) -> bool:
    """Whether consumer group ``group`` has committed offsets up to ``ends``. Not yet, while
    the broker has no coordinator for the group: a freshly started broker answers the
    first lookups with GroupCoordinatorNotAvailable (the caller polls, with a deadline)."""
    admin = bench_kafka(bootstrap).admin()
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except (
        GroupCoordinatorNotAvailableError,
        NotCoordinatorForGroupError,
        CoordinatorLoadInProgressError,
    ):
        return False
    finally:
        await admin.close()
    return all(
        (offsets.get(tp).offset if offsets.get(tp) else 0) >= end for tp, end in ends.items()
    )


async def end_offsets(bootstrap: str, topic: str, isolation: str) -> dict[TopicPartition, int]:
    consumer = bench_kafka(bootstrap).consumer(isolation_level=isolation)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def first_record_time(bootstrap: str, topic: str) -> float:
    consumer = bench_kafka(bootstrap).consumer(
        topic, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        first = min(
            (m.timestamp for ms in (await consumer.getmany(timeout_ms=5000)).values() for m in ms),
            default=None,
        )
    finally:
        await consumer.stop()
    if first is None:
        raise RuntimeError(f"no output on {topic}")
    return float(first) / 1000.0


def throughput(bootstrap: str, tmp: Path, mode: str, n: int, profile: str = "") -> dict[str, Any]:
    config_path, config = deployment(tmp)
    topics = Topics(config.topic_prefix)
    asyncio.run(ensure_led_topics(bootstrap, config))
    asyncio.run(produce_lines(ticks(n), topics, bench_kafka(bootstrap)))
    ends = asyncio.run(end_offsets(bootstrap, topics.ticks, "read_uncommitted"))
    proc, _ = start_worker(config_path, mode, bootstrap, tmp / f"{mode}-throughput.log", profile)
    try:
        deadline = time.time() + 600
        group = group_of(mode, config)
        while not asyncio.run(committed_all(bootstrap, group, ends)):
            if not proc.alive() or time.time() > deadline:
                raise RuntimeError(f"{mode} worker did not finish; see {tmp}")
            time.sleep(0.05)
        done = time.time()
        peak_mib = peak_rss_mib(proc.pid)
        first = asyncio.run(first_record_time(bootstrap, topics.spreads))
    finally:
        proc.stop(60)
        drop_topics_now(bootstrap, config.topic_prefix)
    seconds = done - first
    return {
        "ticks": n,
        "seconds": round(seconds, 3),
        "ticks_per_s": round(n / seconds),
        "peak_rss_mib": peak_mib,
    }


async def offered_load(bootstrap: str, topics: Topics, rate: int, seconds: float) -> list[float]:
    consumer = bench_kafka(bootstrap).consumer(
        topics.spreads,
        topics.signals,
        isolation_level="read_committed",
        auto_offset_reset="latest",
        enable_auto_commit=False,
        # A fetch parked at the broker waits this long for data; committed records
        # are waited for the same way, so this bounds what the subscriber adds.
        fetch_max_wait_ms=FETCH_WAIT_MS,
    )
    await consumer.start()
    producer = bench_kafka(bootstrap).producer(acks="all", linger_ms=0)
    await producer.start()
    sent: dict[int, float] = {}
    latencies: list[float] = []
    stop = asyncio.Event()
    with collector_off():
        receipts = time_receipts(consumer, sent, tick_ts, latencies, stop)
        reader = asyncio.create_task(receipts)
        await asyncio.sleep(1.0)  # the consumer is positioned before anything is sent
        partitions = sorted(await producer.partitions_for(topics.ticks))
        source = ticks(int(rate * seconds) + 1000, seed=11)
        warm_until = time.time() + WARM_UP_S
        pending: list[asyncio.Future[object]] = []
        async for n in paced(rate, seconds):
            for _ in range(n):
                line = next(source)
                if time.time() >= warm_until:
                    sent[orjson.loads(line)["ts"]] = time.time()
                await send_line(producer, topics, partitions, line, pending)
            pending = settled(pending)
        await asyncio.gather(*pending)  # every send acknowledged, or the benchmark fails
        await asyncio.sleep(3.0)  # drain
        stop.set()
        await reader
    await producer.stop()
    await consumer.stop()
    return latencies


def latency(bootstrap: str, tmp: Path, mode: str, rate: int, seconds: float) -> dict[str, Any]:
    config_path, config = deployment(tmp, spread_emit_ms=0)
    topics = Topics(config.topic_prefix)
    asyncio.run(ensure_led_topics(bootstrap, config))
    log = tmp / f"{mode}-latency.log"
    proc, port = start_worker(config_path, mode, bootstrap, log)
    phases = None
    try:
        time.sleep(12)  # join, assignment and (empty) recovery; faust logs at warning here
        if not proc.alive():
            raise RuntimeError(f"{mode} worker exited; see {log}")
        samples = asyncio.run(offered_load(bootstrap, topics, rate, seconds))
        if mode in ("batched", "faust"):  # the naive agent and quix have no such metric
            phases = phase_quantiles(port)
    finally:
        proc.stop(60)
        drop_topics_now(bootstrap, config.topic_prefix)
    result = {"rate": rate, "outputs": len(samples), **percentiles(samples)}
    if phases is not None:
        result["phases"] = phases
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--profile", action="store_true")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--latency-only", action="store_true", help="skip the throughput run")
    only.add_argument("--throughput-only", action="store_true", help="skip the latency run")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--guarantee",
        choices=("exactly-once", "at-least-once"),
        default="exactly-once",
        help="the batched worker's guarantee",
    )
    parser.add_argument(
        "--agent",
        choices=sorted(AGENTS),
        default="all",
        help="which to run: one agent, both (batched and naive) or all three",
    )
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        sys.exit("pipeline_bench: KAFKA_BOOTSTRAP is not set (run it with `make bench`)")
    GUARANTEE[0] = args.guarantee
    results: dict[str, Any] = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}",
        "guarantee": args.guarantee,
    }
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp_name:
        tmp = Path(tmp_name)
        profile = str(tmp / "worker.prof") if args.profile else ""
        modes = AGENTS[args.agent]
        for mode in modes:
            tput: dict[str, Any] = {}
            if not args.latency_only:
                print(f"{mode}: throughput on {args.ticks:,} ticks ...", file=sys.stderr)
                prof = profile if mode == "batched" else ""
                tput = throughput(bootstrap, tmp, mode, args.ticks, prof)
            lat: dict[str, Any] = {}
            if not args.throughput_only:
                print(f"{mode}: latency at {args.rate:,} ticks/s ...", file=sys.stderr)
                lat = latency(bootstrap, tmp, mode, args.rate, args.seconds)
            results[mode] = {"throughput": tput, "latency": lat}
        if args.profile and Path(profile).exists():
            stats = pstats.Stats(profile)
            stats.sort_stats("tottime").print_stats(15)
    for other, name in (("naive", "speedup"), ("quix", "speedup_vs_quix")):
        if not args.latency_only and "batched" in modes and other in modes:
            ratio = results["batched"]["throughput"]["ticks_per_s"] / max(
                1, results[other]["throughput"]["ticks_per_s"]
            )
            results[name] = round(ratio, 1)
    if args.json:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
        return
    print(
        f"pipeline benchmark, {results['date']}, {results['machine']}, the worker {args.guarantee}"
    )
    for mode in modes:
        t, lat = results[mode]["throughput"], results[mode]["latency"]
        if t:
            print(
                f"  {mode:8} {t['ticks_per_s']:>8,} ticks/s ({t['ticks']:,} ticks in"
                f" {t['seconds']} s, peak RSS {t['peak_rss_mib']} MiB)"
            )
        if lat:
            print(
                f"  {mode:8} at {lat['rate']:,} ticks/s: p50 {lat['p50_ms']} ms, p99"
                f" {lat['p99_ms']} ms, p99.9 {lat['p999_ms']} ms over {lat['outputs']:,}"
                " outputs"
            )
        for phase, q in lat.get("phases", {}).items():
            print(
                f"    transaction phase {phase:8} p50 {q['p50_ms']} ms, p99 {q['p99_ms']} ms"
                f" ({q['transactions']:,} transactions)"
            )
    if "speedup" in results:
        print(f"  batched / naive throughput: {results['speedup']}x")
    if "speedup_vs_quix" in results:
        print(f"  batched / quix throughput: {results['speedup_vs_quix']}x")


if __name__ == "__main__":
    main()
