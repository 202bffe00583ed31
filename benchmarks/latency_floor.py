"""The latency floor of this machine and broker: the worker's path with no engine.

A load generator sends ticks to a one-partition input topic at an offered rate, and a
``read_committed`` subscriber times each output from its tick's send, both as
``pipeline_bench`` does (benchmarks/offered.py); between them a relay reads the ticks
(read_committed) and writes four outputs per tick to an eight-partition topic. The
relay is the worker without the engine, its state or its metrics, and like the worker
it runs in a process of its own (``--relay``, started by :func:`measure`): in the
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
import signal
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
from benchmarks.offered import (
    WARM_UP_S,
    collector_off,
    paced,
    settled,
    tick_ts,
    time_receipts,
)
from benchmarks.stats import percentiles

MODES = ("plain", "txn", "txn2", "rdkafka", "rdkafka-txn")
OUTPUTS_PER_TICK = 4
OUT_PARTITIONS = 8
#: The mean size of the worker's outputs in the latency benchmark (spread records with
#: two windows' statistics, ``spread_emit_ms = 0``): 495 bytes, measured by replaying
#: ``pipeline_bench``'s latency ticks (20,000 ticks, 81,665 outputs) on 2026-12-07.
WORKER_OUTPUT_BYTES = 495


def sized(value: bytes, size: int) -> bytes:
    """The output of a tick whose value is ``value`` (its number): ``value`` itself when
    ``size`` is 0, else a JSON object of ``size`` bytes (at least its ``ts``)."""
    if size <= 0:
        return value
    head = b'{"ts":' + value + b',"pad":"'
    return head + b"x" * max(0, size - len(head) - 2) + b'"}'


def _names(tag: str) -> tuple[str, str]:
    """The input and output topics of the run ``tag``."""
    return f"floor-in-{tag}", f"floor-out-{tag}"


async def _topics(bootstrap: str, tag: str) -> tuple[str, str]:
    names = _names(tag)
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
    (aiokafka, in one event loop, as the worker runs)."""

    def __init__(
        self, bootstrap: str, tag: str, mode: str, topics: tuple[str, str], value_bytes: int = 0
    ) -> None:
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
        self.value_bytes = value_bytes
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
            sent = []
            for m in batch:
                value = sized(m.value, self.value_bytes)
                for j in range(OUTPUTS_PER_TICK):
                    partition = (m.offset * 4 + j) % 8
                    sent.append(await producer.send(self.out, value, partition=partition))
            await asyncio.gather(*sent)
            if self.transactional:
                await producer.commit_transaction()


class RdkafkaRelay:
    """The same relay with librdkafka's consumer and producer, in a thread of its own."""

    def __init__(
        self, bootstrap: str, tag: str, mode: str, topics: tuple[str, str], value_bytes: int = 0
    ) -> None:
        self.transactional = mode == "rdkafka-txn"
        self.value_bytes = value_bytes
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
                value = sized(m.value() or b"", self.value_bytes)
                for j in range(OUTPUTS_PER_TICK):
                    producer.produce(out, value, partition=(offset * 4 + j) % 8)
            if self.transactional:
                producer.commit_transaction(30)  # flushes, then commits
            elif producer.flush(30):
                raise RuntimeError("rdkafka relay: records left unacknowledged")
            self.batches += 1


RELAY_READY = b"relay: ready"


def _relay_of(bootstrap: str, mode: str, tag: str, value_bytes: int) -> Relay | RdkafkaRelay:
    topics = _names(tag)
    if mode.startswith("rdkafka"):
        return RdkafkaRelay(bootstrap, tag, mode, topics, value_bytes)
    return Relay(bootstrap, tag, mode, topics, value_bytes)


async def serve_relay(bootstrap: str, mode: str, tag: str, value_bytes: int) -> None:
    """The relay process (``--relay``): relay until SIGTERM; print ``RELAY_READY`` once
    the relay has its partition, and at the end its batch count as JSON."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    shorten_first_partition_retry()  # as the worker does
    relay = _relay_of(bootstrap, mode, tag, value_bytes)
    await relay.start()
    tasks = [asyncio.create_task(c) for c in relay.tasks(stop)]
    deadline = time.monotonic() + 30
    while not relay.ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{mode}: the relay was not assigned its partition in 30 s")
        await asyncio.sleep(0.05)
    sys.stdout.buffer.write(RELAY_READY + b"\n")
    sys.stdout.flush()
    with collector_off():  # as the measuring process: a floor pauses for nothing
        await stop.wait()
        await asyncio.gather(*tasks)
    await relay.stop()
    sys.stdout.buffer.write(orjson.dumps({"batches": relay.batches}) + b"\n")
    sys.stdout.flush()


class RelayProcess:
    """A relay in a process of its own (this module with ``--relay``), as the worker
    runs in one: started, awaited until it holds its partition, stopped with SIGTERM."""

    def __init__(self, bootstrap: str, mode: str, tag: str, value_bytes: int) -> None:
        self.bootstrap, self.mode, self.tag, self.value_bytes = bootstrap, mode, tag, value_bytes
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.latency_floor", "--relay", self.mode,
            "--tag", self.tag, "--value-bytes", str(self.value_bytes),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "KAFKA_BOOTSTRAP": self.bootstrap},
        )  # fmt: skip

    async def ready(self, timeout_s: float) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        except TimeoutError:
            raise RuntimeError(
                f"{self.mode}: the relay process was not ready in {timeout_s:.0f} s"
            ) from None
        if line.strip() != RELAY_READY:
            code = await self.proc.wait()
            raise RuntimeError(
                f"{self.mode}: the relay process exited ({code}) before it was ready"
            )

    async def stop(self) -> int:
        """Stop the relay; its batch count."""
        assert self.proc is not None and self.proc.stdout is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(self.proc.communicate(), 60)
        if self.proc.returncode != 0:
            raise RuntimeError(f"{self.mode}: the relay process exited {self.proc.returncode}")
        batches: int = orjson.loads(out.splitlines()[-1])["batches"]
        return batches

    def kill(self) -> None:
        """End the process if it is still running (a failed measurement)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()


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
    parser.add_argument("--relay", choices=MODES, help=argparse.SUPPRESS)  # measure()'s child
    parser.add_argument("--tag", help=argparse.SUPPRESS)
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        sys.exit("latency_floor: KAFKA_BOOTSTRAP is not set (run it with `make bench`)")
    if args.relay:
        asyncio.run(serve_relay(bootstrap, args.relay, args.tag, args.value_bytes))
        return
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
