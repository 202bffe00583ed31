"""The latency floor of this machine and broker: the worker's path with no engine.

A load generator sends ticks to a one-partition input topic at an offered rate, and a
``read_committed`` subscriber times each output from its tick's send, both as
``pipeline_bench`` does (benchmarks/offered.py); between them a relay reads the ticks
(read_committed) and writes four outputs per tick to an eight-partition topic. The
relay is the worker without the engine, its state or its metrics, in five modes:

* ``plain``: an idempotent producer, no transactions (the floor of any Kafka pipeline
  from Python here);
* ``txn``: one transaction per batch, as the worker runs them (begin, send, wait for the
  acknowledgements, commit, and the next batch at once);
* ``txn2``: two transactional producers in turn, so that a batch need not wait for the
  markers of the previous commit (each still begins after the previous EndTxn returned);
* ``rdkafka`` and ``rdkafka-txn``: ``plain`` and ``txn`` with librdkafka
  (confluent-kafka) in a thread of its own, to tell aiokafka's share from the broker's.

What the worker adds on top of ``txn`` is its own time; what ``txn`` adds on top of
``plain`` is the price of exactly once; ``plain`` is the machine's and the broker's.

    KAFKA_BOOTSTRAP=... python -m benchmarks.latency_floor [--rate 5000] [--pairs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
import uuid
from collections.abc import Coroutine
from datetime import date
from typing import Any

import confluent_kafka
import orjson
from aiokafka.admin import NewTopic

from arbstream.agents.kafka.aiokafka_private import shorten_first_partition_retry
from benchmarks.cleanup import drop_topics
from benchmarks.kafka import bench_kafka, wait_for_leaders
from benchmarks.offered import collector_off, paced, settled, time_receipts
from benchmarks.stats import percentiles

MODES = ("plain", "txn", "txn2", "rdkafka", "rdkafka-txn")
OUTPUTS_PER_TICK = 4
OUT_PARTITIONS = 8


async def _topics(bootstrap: str, tag: str) -> tuple[str, str]:
    names = (f"floor-in-{tag}", f"floor-out-{tag}")
    admin = bench_kafka(bootstrap).admin()
    await admin.start()
    try:
        await admin.create_topics([NewTopic(names[0], 1, 1), NewTopic(names[1], OUT_PARTITIONS, 1)])
        await wait_for_leaders(admin, {names[0]: 1, names[1]: OUT_PARTITIONS})
    finally:
        await admin.close()
    return names


class Relay:
    """Reads the input, writes ``OUTPUTS_PER_TICK`` records per tick, batch by batch
    (aiokafka, in the measuring process's event loop, as the worker runs)."""

    def __init__(self, bootstrap: str, tag: str, mode: str, topics: tuple[str, str]) -> None:
        n = {"plain": 1, "txn": 1, "txn2": 2}[mode]
        transactional = mode != "plain"
        self.producers = [
            bench_kafka(bootstrap).producer(
                transactional_id=f"floor-{tag}-{i}" if transactional else None,
                enable_idempotence=True,
                acks="all",
                linger_ms=0,
            )
            for i in range(n)
        ]
        self.consumer = bench_kafka(bootstrap).consumer(
            topics[0],
            group_id=f"floor-{tag}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        self.transactional = transactional
        self.out = topics[1]
        self.inbox: list[Any] = []
        self.wake = asyncio.Event()
        self.batches = 0

    async def start(self) -> None:
        for producer in self.producers:
            await producer.start()
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        for producer in self.producers:
            await producer.stop()

    def ready(self) -> bool:
        return bool(self.consumer.assignment())

    def tasks(self, stop: asyncio.Event) -> list[Coroutine[Any, Any, None]]:
        return [self.fetch(stop), self.run(stop)]

    async def fetch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for messages in (await self.consumer.getmany(timeout_ms=100)).values():
                self.inbox.extend(messages)
                self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self.inbox:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), 0.2)
                except TimeoutError:
                    continue
            batch, self.inbox = self.inbox, []
            producer = self.producers[self.batches % len(self.producers)]
            self.batches += 1
            if self.transactional:
                await producer.begin_transaction()
            sent = [
                await producer.send(self.out, m.value, partition=(m.offset * 4 + j) % 8)
                for m in batch
                for j in range(OUTPUTS_PER_TICK)
            ]
            await asyncio.gather(*sent)
            if self.transactional:
                await producer.commit_transaction()


class RdkafkaRelay:
    """The same relay with librdkafka's consumer and producer, in a thread of its own."""

    def __init__(self, bootstrap: str, tag: str, mode: str, topics: tuple[str, str]) -> None:
        self.transactional = mode == "rdkafka-txn"
        security = bench_kafka(bootstrap).security.librdkafka()
        conf: dict[str, Any] = {
            **security,
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 0,
        }
        if self.transactional:
            conf["transactional.id"] = f"floor-{tag}"
        self.producer = confluent_kafka.Producer(conf)
        self.consumer = confluent_kafka.Consumer(
            {
                **security,
                "bootstrap.servers": bootstrap,
                "group.id": f"floor-{tag}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 5,
            }
        )
        self.topics = topics
        self.batches = 0
        self.assigned = threading.Event()
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rdkafka-relay", daemon=True)

    async def start(self) -> None:
        if self.transactional:
            await asyncio.to_thread(self.producer.init_transactions, 30)
        self.consumer.subscribe([self.topics[0]], on_assign=lambda _c, _p: self.assigned.set())
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join, 30)
        self.consumer.close()
        if self.error is not None:
            raise RuntimeError(f"rdkafka relay failed: {self.error}") from self.error

    def ready(self) -> bool:
        return self.assigned.is_set()

    def tasks(self, stop: asyncio.Event) -> list[Coroutine[Any, Any, None]]:
        return []

    def _run(self) -> None:
        try:
            self._relay()
        except Exception as exc:  # stop() raises it in the measuring coroutine
            self.error = exc

    def _relay(self) -> None:
        out, producer = self.topics[1], self.producer
        while not self._stop.is_set():
            first = self.consumer.poll(0.1)  # at once when a record is there
            if first is None:
                continue
            batch = [first, *self.consumer.consume(num_messages=100_000, timeout=0)]
            if self.transactional:
                producer.begin_transaction()
            for m in batch:
                offset = m.offset()
                if m.error() is not None or offset is None:
                    raise RuntimeError(f"rdkafka relay: {m.error()}")
                for j in range(OUTPUTS_PER_TICK):
                    producer.produce(out, m.value(), partition=(offset * 4 + j) % 8)
            if self.transactional:
                producer.commit_transaction(30)  # flushes, then commits
            elif producer.flush(30):
                raise RuntimeError("rdkafka relay: records left unacknowledged")
            self.batches += 1


async def measure(bootstrap: str, mode: str, rate: int, seconds: float) -> dict[str, Any]:
    """One run: p50/p99 of send-to-subscriber for every output, and the counts."""
    tag = uuid.uuid4().hex[:8]
    topics = await _topics(bootstrap, tag)
    relay: Relay | RdkafkaRelay
    if mode.startswith("rdkafka"):
        relay = RdkafkaRelay(bootstrap, tag, mode, topics)
    else:
        relay = Relay(bootstrap, tag, mode, topics)
    subscriber = bench_kafka(bootstrap).consumer(
        topics[1],
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        fetch_max_wait_ms=5,
    )
    load = bench_kafka(bootstrap).producer(acks="all", linger_ms=0)
    await relay.start()
    await subscriber.start()
    await load.start()
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    stop = asyncio.Event()
    receipts = time_receipts(subscriber, sent_at, int, latencies, stop)
    tasks = [asyncio.create_task(c) for c in (receipts, *relay.tasks(stop))]
    deadline = time.monotonic() + 30
    while not (relay.ready() and subscriber.assignment()):
        if time.monotonic() > deadline:
            waiting = "the relay" if not relay.ready() else "the subscriber"
            raise RuntimeError(f"{mode}: {waiting} was not assigned its partitions in 30 s")
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # positioned, and the first fetches parked
    n = 0
    with collector_off():
        pending: list[asyncio.Future[object]] = []
        async for in_slice in paced(rate, seconds):
            for _ in range(in_slice):
                n += 1
                sent_at[n] = time.time()
                pending.append(await load.send(topics[0], str(n).encode()))
            pending = settled(pending)
        await asyncio.gather(*pending)
        deadline = time.monotonic() + 10
        while len(latencies) < n * OUTPUTS_PER_TICK and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*tasks)
    await load.stop()
    await subscriber.stop()
    await relay.stop()
    await drop_topics(bootstrap, tag)
    if len(latencies) != n * OUTPUTS_PER_TICK:
        raise RuntimeError(f"{mode}: {len(latencies)} outputs of {n * OUTPUTS_PER_TICK}")
    counts = {"mode": mode, "rate": rate, "outputs": len(latencies), "batches": relay.batches}
    return counts | percentiles(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--pairs", type=int, default=2, help="rounds of every mode, in turn")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        sys.exit("latency_floor: KAFKA_BOOTSTRAP is not set (run it with `make bench`)")
    shorten_first_partition_retry()  # as the worker does
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in MODES for m in modes):
        sys.exit(f"latency_floor: --modes takes {', '.join(MODES)}")
    runs = []
    for _ in range(args.pairs):
        for mode in modes:
            run = asyncio.run(measure(bootstrap, mode, args.rate, args.seconds))
            runs.append(run)
            print(
                f"latency floor, {mode:5} at {args.rate:,} ticks/s: p50 {run['p50_ms']} ms, "
                f"p99 {run['p99_ms']} ms, p99.9 {run['p999_ms']} ms "
                f"({run['outputs']:,} outputs, {run['batches']:,} batches)",
                file=sys.stderr,
            )
    if args.json:
        print(orjson.dumps({"date": date.today().isoformat(), "runs": runs}).decode())


if __name__ == "__main__":
    main()
