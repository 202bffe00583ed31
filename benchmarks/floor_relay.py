"""The latency floor's relay (benchmarks/latency_floor.py): the worker's Kafka path with
no engine, run in a process of its own as the worker is.

The relay reads the ticks of a one-partition input topic (read_committed) and writes
``OUTPUTS_PER_TICK`` outputs per tick to an ``OUT_PARTITIONS``-partition topic, batch by
batch, in one of ``MODES`` (latency_floor's docstring says what each measures).
:class:`RelayProcess` starts it as ``python -m benchmarks.floor_relay MODE TAG
VALUE_BYTES`` (the broker in ``KAFKA_BOOTSTRAP``), waits for its ready line, and stops it
with SIGTERM; the relay prints its batch count on the way out.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any

import confluent_kafka
import orjson

from arbstream.agents.kafka.aiokafka_private import shorten_first_partition_retry
from benchmarks.kafka import bench_kafka
from benchmarks.offered import collector_off

MODES = ("plain", "txn", "txn2", "rdkafka", "rdkafka-txn")
OUTPUTS_PER_TICK = 4
OUT_PARTITIONS = 8


def sized(value: bytes, size: int) -> bytes:
    """The output of a tick whose value is ``value`` (its number): ``value`` itself when
    ``size`` is 0, else a JSON object of ``size`` bytes (at least its ``ts``)."""
    if size <= 0:
        return value
    head = b'{"ts":' + value + b',"pad":"'
    return head + b"x" * max(0, size - len(head) - 2) + b'"}'


def names(tag: str) -> tuple[str, str]:
    """The input and output topics of the run ``tag``."""
    return f"floor-in-{tag}", f"floor-out-{tag}"


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
    topics = names(tag)
    if mode.startswith("rdkafka"):
        return RdkafkaRelay(bootstrap, tag, mode, topics, value_bytes)
    return Relay(bootstrap, tag, mode, topics, value_bytes)


async def serve_relay(bootstrap: str, mode: str, tag: str, value_bytes: int) -> None:
    """The relay process: relay until SIGTERM; print ``RELAY_READY`` once
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
    """A relay in a process of its own (this module run as a program), as the worker
    runs in one: started, awaited until it holds its partition, stopped with SIGTERM."""

    def __init__(self, bootstrap: str, mode: str, tag: str, value_bytes: int) -> None:
        self.bootstrap, self.mode, self.tag, self.value_bytes = bootstrap, mode, tag, value_bytes
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.floor_relay", self.mode, self.tag,
            str(self.value_bytes),
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


def main() -> None:
    """``python -m benchmarks.floor_relay MODE TAG VALUE_BYTES``, as RelayProcess runs it."""
    usage = "floor_relay: MODE TAG VALUE_BYTES with KAFKA_BOOTSTRAP set (latency_floor runs it)"
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap or len(sys.argv) != 4 or sys.argv[1] not in MODES:
        sys.exit(usage)
    mode, tag, value_bytes = sys.argv[1:4]
    asyncio.run(serve_relay(bootstrap, mode, tag, int(value_bytes)))


if __name__ == "__main__":
    main()
