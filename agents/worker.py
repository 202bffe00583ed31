"""``arbstream worker``: the engine on the ticks topic, exactly once.

The worker is one member of the consumer group ``arbstream-<prefix>`` on the ticks
topic. For each ticks partition p it is assigned, it keeps one engine
(:class:`streams.engine.Engine`; every partition carries every FX record, so each has
its own FX book) and one transactional producer whose id, ``arbstream-<prefix>-ticks-p``,
is the partition's: whoever owns p next fences this one when it starts.

Each poll returns a batch of records per partition. For each partition's batch, in one
transaction:

1. every record goes through the engine;
2. the outputs go to their topics (spreads and signals keyed as contracts.md §5 says,
   dlq records to the source partition's number), built into record batches
   (agents/outputs.py), with no await per record;
3. the engine's state changes and the next ticks offset go to partition p of the state
   topic (agents/state_store.py);
4. the next offset is committed to the group, and the transaction commits.

Outputs, state and offset become visible together or not at all; readers use
``isolation_level=read_committed``. When p is assigned, the worker starts its producer
(fencing the previous owner and settling its open transaction), reads the committed
state of p, and resumes at the offset stored with it. So a worker killed with SIGKILL,
or a partition moved to another worker, continues exactly where the committed output
stopped.

Why not Faust's agents (design.md expected them): see the module docstring of
benchmarks/naive_faust.py and the README. In short, Faust's stream delivers at most
~16,000 events/s here even to an agent that does nothing, and its exactly_once mode
picks the transaction of an output from the output's partition and commits offsets of
events whose outputs its transaction does not hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced

from agents.errors import AgentError
from agents.outputs import OutputBatches
from agents.state_store import OFFSET_KEY, StateReader
from agents.topics import (
    TICKS_MAX_MESSAGE_BYTES,
    Topics,
    ensure_state_topic,
    ensure_topics,
    partition_counts,
)
from streams.config import Config
from streams.engine import Engine, Source

log = logging.getLogger(__name__)

#: Records per poll at most. A poll returns what the fetcher holds, so at low rates
#: batches are small and latency is one poll plus one commit.
BATCH_MAX = 5000
POLL_TIMEOUT_MS = 100
#: A worker that dies without leaving the group (kill -9, lost host) keeps its
#: partitions until this expires (Kafka's default is 45 s).
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 1_000
#: Producer batches; the broker's default max.message.bytes is 1 MiB.
PRODUCER_BATCH_BYTES = 512 * 1024
READY_MESSAGE = "arbstream worker ready"


@dataclass(frozen=True)
class WorkerSettings:
    """Everything a worker needs besides the config."""

    bootstrap: str  # host:port[,host:port]
    web_port: int
    web_host: str = "0.0.0.0"
    batch_max: int = BATCH_MAX


def app_id(config: Config) -> str:
    """The consumer group, and the prefix of the transactional ids."""
    return f"arbstream-{config.topic_prefix}"


class PartitionLostError(AgentError):
    """Another worker owns the partition now (this worker's producer was fenced)."""


class PartitionProcessor:
    """One assigned ticks partition: its engine, producer and next offset."""

    def __init__(
        self,
        tp: TopicPartition,
        engine: Engine,
        producer: AIOKafkaProducer,
        next_offset: int,
        topics: Topics,
        counts: dict[str, int],
        group_id: str,
    ) -> None:
        self.tp = tp
        self.engine = engine
        self.producer = producer
        self.next_offset = next_offset
        self._topics = topics
        self._counts = counts
        self._group_id = group_id
        self._dlq_partition = tp.partition % counts[topics.dlq]
        self._partition_of: dict[tuple[str, bytes], int] = {}

    async def process(self, messages: Sequence[Any]) -> int:
        """Run one batch in one transaction; return how many records it processed.

        Records below the next offset (fetched before a seek) are skipped. On any error
        the engine is ahead of the committed state: the caller must rebuild it.
        """
        start = self.next_offset
        skip = 0
        while skip < len(messages) and messages[skip].offset < start:
            skip += 1
        if skip == len(messages):
            return 0
        if messages[skip].offset != start:
            raise AgentError(f"{self.tp}: expected offset {start}, fetched {messages[skip].offset}")
        producer = self.producer
        topics = self._topics
        out = OutputBatches(producer, self._counts, self._partition_of)
        keyed = out.keyed
        dumps = orjson.dumps
        process = self.engine.process
        spreads, signals, dlq = topics.spreads, topics.signals, topics.dlq
        names = {"spreads": spreads, "signals": signals}
        await producer.begin_transaction()
        try:
            offset = start - 1
            for message in messages[skip:]:
                offset = message.offset
                value = message.value
                for stream, key, record in process(b"" if value is None else value, offset):
                    if key is None:
                        out.to(dlq, self._dlq_partition, None, dumps(record))
                    else:
                        keyed(names[stream], key.encode(), dumps(record))
            next_offset = offset + 1
            state, p = topics.state, self.tp.partition
            for entry_key, entry in self.engine.changes():
                out.to(state, p, entry_key.encode(), entry)
            out.to(state, p, OFFSET_KEY.encode(), str(next_offset).encode())
            await out.flush()
            await producer.send_offsets_to_transaction({self.tp: next_offset}, self._group_id)
            await producer.commit_transaction()
        except ProducerFenced as exc:
            raise PartitionLostError(f"{self.tp}: fenced by another worker") from exc
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.abort_transaction()
            raise
        self.next_offset = next_offset
        return next_offset - start


class Worker:
    """The consumer, the processors of the assigned partitions, and the rebalance logic."""

    def __init__(self, config: Config, settings: WorkerSettings, counts: dict[str, int]) -> None:
        self.config = config
        self.settings = settings
        self.topics = Topics(config.topic_prefix)
        self.group_id = app_id(config)
        self._counts = counts
        self.processors: dict[int, PartitionProcessor] = {}
        # Held while a batch runs; a revocation waits for it, so no partition moves away
        # in the middle of a transaction.
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self.ready = False
        self.processed = 0
        self._error: BaseException | None = None
        self._reader = StateReader(settings.bootstrap, self.topics.state)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            # A multi-megabyte garbage record must reach the engine (and the dlq) too.
            max_partition_fetch_bytes=TICKS_MAX_MESSAGE_BYTES,
            fetch_max_bytes=2 * TICKS_MAX_MESSAGE_BYTES,
        )

    # -- lifecycle --------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until ``stop``; then commit nothing half done and leave the group."""
        await self._reader.start()
        try:
            self._consumer.subscribe([self.topics.ticks], listener=_Listener(self))
            await self._consumer.start()
            try:
                await self._loop()
            finally:
                await self._consumer.stop()
        finally:
            await self._reader.stop()
            for processor in self.processors.values():
                await _stop_producer(processor.producer)
            self.processors.clear()
        if self._error is not None:
            raise AgentError(f"worker stopped on an error: {self._error!r}") from self._error

    def stop(self) -> None:
        self._stopping.set()

    def fail(self, error: BaseException) -> None:
        """Stop, and make ``run`` raise ``error`` once everything is closed."""
        log.error("worker failing: %r", error)
        self._error = error
        self._stopping.set()

    async def _loop(self) -> None:
        consumer = self._consumer
        stopping = self._stopping
        while not stopping.is_set():
            fetched = await consumer.getmany(
                timeout_ms=POLL_TIMEOUT_MS, max_records=self.settings.batch_max
            )
            if not fetched:
                continue
            async with self._lock:
                work = [
                    (self.processors[tp.partition], messages)
                    for tp, messages in fetched.items()
                    if tp.partition in self.processors
                ]
                results = await asyncio.gather(
                    *(processor.process(messages) for processor, messages in work),
                    return_exceptions=True,
                )
                for (processor, _), result in zip(work, results, strict=True):
                    if isinstance(result, BaseException):
                        await self._recover_after(processor, result)
                    else:
                        self.processed += result

    async def _recover_after(self, processor: PartitionProcessor, error: BaseException) -> None:
        """A batch failed: nothing of it is committed, but the engine has moved on."""
        p = processor.tp.partition
        if isinstance(error, PartitionLostError):
            log.warning("%s; dropping partition %d until the next rebalance", error, p)
            del self.processors[p]
            self._consumer.pause(processor.tp)
            await _stop_producer(processor.producer)
            return
        if not isinstance(error, (KafkaError, AgentError, OSError, TimeoutError)):
            raise error
        # A new producer under the same id settles this one's transactions (the failed
        # one and a commit whose markers may still be in flight) before the state is
        # read back. (If this worker had left the group, the partition's new owner would
        # have fenced it, and the batch would have failed with PartitionLostError instead.)
        log.warning("partition %d: batch failed (%r); rebuilding from committed state", p, error)
        del self.processors[p]
        await _stop_producer(processor.producer)
        await self._load([p])

    # -- assignment -------------------------------------------------------------------

    async def on_revoked(self) -> None:
        # Wait for the batch in flight: its transaction commits (or aborts) before the
        # partitions go. Processors stay until the assignment says which ones remain.
        self.ready = False
        async with self._lock:
            pass

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        async with self._lock:
            mine = {tp.partition for tp in assigned if tp.topic == self.topics.ticks}
            for p in set(self.processors) - mine:
                await _stop_producer(self.processors.pop(p).producer)
            # A partition kept through the rebalance is still exactly as committed,
            # unless another worker committed on it meanwhile (this one was out of the
            # group for a while): then the group's offset is not ours.
            stale = []
            for p in sorted(mine & set(self.processors)):
                processor = self.processors[p]
                committed = await self._consumer.committed(processor.tp)
                if committed != processor.next_offset:
                    stale.append(p)
                    await _stop_producer(self.processors.pop(p).producer)
                else:
                    self._consumer.seek(processor.tp, processor.next_offset)
            new = sorted((mine - set(self.processors)) | set(stale))
            if new:
                await self._load(new)
            self._consumer.resume(*[TopicPartition(self.topics.ticks, p) for p in mine])
            self.ready = True
            log.info("%s: partitions %s", READY_MESSAGE, sorted(mine))

    async def _load(self, partitions: list[int]) -> None:
        """(Re)build the processors of ``partitions`` from the committed state.

        Each gets a new producer first, whose start fences every earlier producer of its
        partition and settles their transactions, so the state read is complete.
        """
        started = await asyncio.gather(
            *(self._start_producer(p) for p in partitions), return_exceptions=True
        )
        producers = {
            p: x
            for p, x in zip(partitions, started, strict=True)
            if not isinstance(x, BaseException)
        }
        try:
            for result in started:
                if isinstance(result, BaseException):
                    raise result
            recovered = await self._reader.read(partitions)
            for p in partitions:
                state = recovered[p]
                tp = TopicPartition(self.topics.ticks, p)
                engine = Engine(self.config, _source_of(self.topics.ticks, p))
                engine.load(state.entries)
                next_offset = state.next_offset
                if next_offset is None:
                    next_offset = await self._first_offset(tp)
                self.processors[p] = PartitionProcessor(
                    tp,
                    engine,
                    producers.pop(p),
                    next_offset,
                    self.topics,
                    self._counts,
                    self.group_id,
                )
                self._consumer.seek(tp, next_offset)
                log.info(
                    "partition %d: %d state entries, resuming at offset %d",
                    p,
                    len(state.entries),
                    next_offset,
                )
        finally:
            for producer in producers.values():  # those not handed to a processor
                await _stop_producer(producer)

    async def _first_offset(self, tp: TopicPartition) -> int:
        """Where a partition without state starts: its beginning, unless the group has
        committed offsets (the state topic was deleted: outputs may repeat)."""
        committed = await self._consumer.committed(tp)
        if committed is not None:
            log.warning("%s: no state but a committed offset %d; starting there", tp, committed)
            return int(committed)
        return int((await self._reader.beginning_offsets([tp]))[tp])

    async def _start_producer(self, partition: int) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap,
            transactional_id=f"{self.group_id}-ticks-{partition}",
            enable_idempotence=True,
            acks="all",
            linger_ms=0,
            max_batch_size=PRODUCER_BATCH_BYTES,
            max_request_size=2 * TICKS_MAX_MESSAGE_BYTES,
        )
        await producer.start()
        return producer


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._worker.on_revoked()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # aiokafka logs a listener's exception and carries on; a worker that could not
        # load its partitions must stop instead of idling on them.
        try:
            await self._worker.on_assigned(assigned)
        except Exception as exc:
            self._worker.fail(exc)


def _source_of(topic: str, partition: int) -> Callable[[int], Source]:
    def source_of(offset: int) -> Source:
        return {"topic": topic, "partition": partition, "offset": offset}

    return source_of


async def _stop_producer(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except Exception as exc:  # a fenced producer may fail to flush: nothing to keep
        log.debug("producer stop: %r", exc)


async def _serve_health(worker: Worker, host: str, port: int) -> web.AppRunner:
    """``/healthz`` (the process is up) and ``/readyz`` (partitions assigned and loaded)."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        body = {"ready": worker.ready, "partitions": sorted(worker.processors)}
        return web.json_response(body, status=200 if worker.ready else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def prepare(config: Config, bootstrap: str) -> dict[str, int]:
    """Create missing topics (the state topic too); return every topic's partition count."""
    topics = await ensure_topics(bootstrap, config)
    await ensure_state_topic(bootstrap, config)
    return await partition_counts(bootstrap, [*topics.all(), topics.state])


async def serve(config: Config, settings: WorkerSettings) -> None:
    """Run a worker until SIGINT/SIGTERM."""
    counts = await prepare(config, settings.bootstrap)
    worker = Worker(config, settings, counts)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.stop)
    runner = await _serve_health(worker, settings.web_host, settings.web_port)
    started = time.monotonic()
    try:
        await worker.run()
    finally:
        await runner.cleanup()
        log.info(
            "worker stopped: %d records in %.1f s", worker.processed, time.monotonic() - started
        )


def run_worker(config: Config, settings: WorkerSettings, loglevel: str = "info") -> None:
    """Run a worker until it is stopped (SIGINT/SIGTERM)."""
    logging.basicConfig(
        level=loglevel.upper(),
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
    )
    asyncio.run(serve(config, settings))
