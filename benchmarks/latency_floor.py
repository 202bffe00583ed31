"""The latency floor of this machine and broker: the worker's path with no engine.

A load generator sends ticks to a one-partition input topic at an offered rate, and a
``read_committed`` subscriber times each output from its tick's send, both as
``pipeline_bench`` does (benchmarks/offered.py); between them a relay reads the ticks
(read_committed) and writes four outputs per tick to an eight-partition topic. The
relay is the worker without the engine, its state or its metrics, and like the worker
it runs in a process of its own (benchmarks/floor_relay.py, started by :func:`measure`): in the
measuring process it shared one event loop with the load generator and the subscriber,
and on a busy machine that made the "floor" slower than the worker it was the floor of
(2026-12-07). It has five modes:

* ``plain``: an idempotent producer, no transactions (the floor of any Kafka pipeline
  from Python here);
* ``txn``: one transaction per batch, as the worker runs them (begin, send, wait for the
  acknowledgements, commit, and the next batch at once);
* ``txn2``: two transactional producers in turn, so that a batch need not wait for the
  markers of the previous commit (each still begins after the previous EndTxn returned);
* ``rdkafka`` and ``rdkafka-txn``: ``plain`` and ``txn`` with librdkafka
  (confluent-kafka) in a thread of its own, to tell aiokafka's share from the broker's.

As ``pipeline_bench`` times the worker, the first second of a run
(``benchmarks.offered.WARM_UP_S``) is sent and not timed: a run starts on new topics,
and its first outputs took 65-650 ms where the rest took 5-30 (2026-12-08; until then
the floors counted them and the worker's runs did not).

What the worker adds on top of ``txn`` is its own time; what ``txn`` adds on top of
``plain`` is the price of exactly once; ``plain`` is the machine's and the broker's.

By default an output is its tick's value as sent (the tick's number, a few bytes).
``--value-bytes N`` makes every output a JSON object of N bytes that carries the tick's
number as ``ts`` (the subscriber then parses each output, as ``pipeline_bench``'s
does): with N the size of the worker's outputs (:data:`WORKER_OUTPUT_BYTES`), the broker
and the subscriber carry the worker's bytes, and what is left between the worker and
this floor is the worker's own CPU and its state records.

    KAFKA_BOOTSTRAP=... python -m benchmarks.latency_floor [--rate 5000] [--pairs 2]
        [--value-bytes N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import date
from typing import Any

import orjson
from aiokafka.admin import NewTopic

from benchmarks.cleanup import drop_topics
from benchmarks.floor_relay import MODES, OUT_PARTITIONS, OUTPUTS_PER_TICK, RelayProcess, names
from benchmarks.kafka import bench_kafka, wait_for_leaders
from benchmarks.offered import (
    WARM_UP_S,
    collector_off,
    paced,
    settled,
    tick_ts,
    time_receipts,
)
from benchmarks.stats import percentiles

#: The mean size of the worker's outputs in the latency benchmark (spread records with
#: two windows' statistics, ``spread_emit_ms = 0``): 495 bytes, measured by replaying
#: ``pipeline_bench``'s latency ticks (20,000 ticks, 81,665 outputs) on 2026-12-07.
WORKER_OUTPUT_BYTES = 495


async def _topics(bootstrap: str, tag: str) -> tuple[str, str]:
    pair = names(tag)
    admin = bench_kafka(bootstrap).admin()
    await admin.start()
    try:
        await admin.create_topics([NewTopic(pair[0], 1, 1), NewTopic(pair[1], OUT_PARTITIONS, 1)])
        await wait_for_leaders(admin, {pair[0]: 1, pair[1]: OUT_PARTITIONS})
    finally:
        await admin.close()
    return pair


async def measure(
    bootstrap: str,
    mode: str,
    rate: int,
    seconds: float,
    value_bytes: int = 0,
    warm_up_s: float = WARM_UP_S,
) -> dict[str, Any]:
    """One run: p50/p99 of send-to-subscriber for every output of the ticks sent after
    the first ``warm_up_s`` seconds, and the counts; outputs of ``value_bytes`` bytes
    each (0: the tick's value as sent)."""
    tag = uuid.uuid4().hex[:8]
    topics = await _topics(bootstrap, tag)
    relay = RelayProcess(bootstrap, mode, tag, value_bytes)
    subscriber = bench_kafka(bootstrap).consumer(
        topics[1],
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        fetch_max_wait_ms=5,
    )
    load = bench_kafka(bootstrap).producer(acks="all", linger_ms=0)
    await relay.start()
    try:
        await subscriber.start()
        await load.start()
        sent_at: dict[int, float] = {}
        latencies: list[float] = []
        stop = asyncio.Event()
        key_of = tick_ts if value_bytes > 0 else int
        receipts = asyncio.create_task(time_receipts(subscriber, sent_at, key_of, latencies, stop))
        await relay.ready(timeout_s=30)
        deadline = time.monotonic() + 30
        while not subscriber.assignment():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{mode}: the subscriber was not assigned its partitions in 30 s"
                )
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # positioned, and the first fetches parked
        n = 0
        with collector_off():
            pending: list[asyncio.Future[object]] = []
            warm_until = time.time() + warm_up_s
            async for in_slice in paced(rate, seconds):
                for _ in range(in_slice):
                    n += 1
                    if time.time() >= warm_until:  # as pipeline_bench times the worker
                        sent_at[n] = time.time()
                    pending.append(await load.send(topics[0], str(n).encode()))
                pending = settled(pending)
            await asyncio.gather(*pending)
            expected = len(sent_at) * OUTPUTS_PER_TICK
            deadline = time.monotonic() + 10
            while len(latencies) < expected and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            stop.set()
            await receipts
        await load.stop()
        await subscriber.stop()
        batches = await relay.stop()
    finally:
        relay.kill()
    await drop_topics(bootstrap, tag)
    if len(latencies) != expected:
        raise RuntimeError(f"{mode}: {len(latencies)} timed outputs of {expected}")
    counts = {
        "mode": mode,
        "rate": rate,
        "value_bytes": value_bytes,
        "ticks": n,
        "timed_ticks": len(sent_at),
        "outputs": len(latencies),
        "batches": batches,
    }
    return counts | percentiles(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--pairs", type=int, default=2, help="rounds of every mode, in turn")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument(
        "--value-bytes",
        type=int,
        default=0,
        help=f"each output's size (0: the tick's number; the worker's: {WORKER_OUTPUT_BYTES})",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        sys.exit("latency_floor: KAFKA_BOOTSTRAP is not set (run it with `make bench`)")
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in MODES for m in modes):
        sys.exit(f"latency_floor: --modes takes {', '.join(MODES)}")
    sized_note = f" ({args.value_bytes} B outputs)" if args.value_bytes else ""
    runs = []
    for _ in range(args.pairs):
        for mode in modes:
            run = asyncio.run(measure(bootstrap, mode, args.rate, args.seconds, args.value_bytes))
            runs.append(run)
            print(
                f"latency floor, {mode:5}{sized_note} at {args.rate:,} ticks/s: "
                f"p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, p99.9 {run['p999_ms']} ms "
                f"({run['outputs']:,} outputs, {run['batches']:,} batches)",
                file=sys.stderr,
            )
    if args.json:
        print(orjson.dumps({"date": date.today().isoformat(), "runs": runs}).decode())


if __name__ == "__main__":
    main()
