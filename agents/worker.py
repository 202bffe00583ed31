"""``arbstream worker``: the engine on the ticks topic, exactly once (or, with
``guarantee = "at-least-once"``, at least once; the end of this docstring).

The worker is one member of the consumer group ``arbstream-<prefix>`` on the ticks
topic. For each ticks partition p it is assigned, it keeps one engine
(:class:`streams.engine.Engine`; every partition carries every FX record, so each has
its own FX book) and one transactional producer whose id, ``arbstream-<prefix>-ticks-p``,
is the partition's: whoever owns p next fences this one when it starts. (The names are
agents/kafka/topics.py's; the clients carry the process's security settings.)

A fetch loop hands each partition's records to that partition's task
(agents/partition.py), which takes what has arrived as one batch and, in one
transaction:

1. runs every record through the engine;
2. sends the outputs to their topics (spreads and signals keyed as docs/records.md
   says, dlq records to the source partition's number), built into record batches
   (agents/outputs.py), with no await per record;
3. writes the engine's state changes and the next ticks offset to partition p of the
   state topic (agents/state_store.py);
4. commits; then, at most once a second, the group's offset (for lag monitoring only,
   committed by the consumer outside the transaction: agents/partition.py).

A batch with no outputs is held instead, and commits with the next transaction, at
most a second later (agents/partition.py, "quiet batches").

Outputs, state and offset become visible together or not at all; readers use
``isolation_level=read_committed``. When p is assigned, the worker starts its producer
(fencing the previous owner and settling its open transaction), reads the committed
state of p, and resumes at the offset stored with it. So a worker killed with SIGKILL,
or a partition moved to another worker, continues exactly where the committed output
stopped. At a rebalance every partition finishes its batch in flight, and every
partition assigned afterwards, kept ones included, is rebuilt from the committed state:
one rule, with no case in which a kept engine could be stale.

At least once, a partition's producer is idempotent but not transactional: each batch's
outputs are sent and acknowledged, then its state changes and next offset are written
as one record batch (Kafka appends it whole), sent with the next batch's outputs, and
the group's offset is committed by the consumer. Outputs are visible as
soon as they are acknowledged, with no transaction to wait for; a worker killed before
a batch's state is written leaves outputs whose state was not written, and the next
owner produces them again, identical, with the same ``seq`` (docs/guarantees.md: what a
subscriber does about it).

Why not Faust's agents (the first design planned them): see the module docstring of
benchmarks/naive_faust.py and the README. In short, Faust's stream delivers at most
~16,000 events/s here even to an agent that does nothing, and its exactly_once mode
picks the transaction of an output from the output's partition and commits offsets of
events whose outputs its transaction does not hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from arbstream.agents.batch_failures import failure_of, stop_reason
from arbstream.agents.commit_policy import Do
from arbstream.agents.errors import AgentError, KafkaRefusedError
from arbstream.agents.heap import settle_heap
from arbstream.agents.kafka.access import AUTHORIZATION_ERRORS, denial
from arbstream.agents.kafka.aiokafka_private import bare_records, shorten_first_partition_retry
from arbstream.agents.kafka.clients import HEARTBEAT_INTERVAL_MS, SESSION_TIMEOUT_MS
from arbstream.agents.kafka.health import PartitionHealth
from arbstream.agents.kafka.probe import BrokerWatch, broker_reachable, close_quietly
from arbstream.agents.kafka.topics import TICKS_MAX_MESSAGE_BYTES, Topics
from arbstream.agents.metrics import BatchStats, WorkerMetrics, WorkerView
from arbstream.agents.outputs import DeliveryError
from arbstream.agents.partition import Commits, PartitionProcessor
from arbstream.agents.recovery import PartitionLoader
from arbstream.agents.routing import OutputPlacement
from arbstream.agents.settings import Deployment, WorkerSettings
from arbstream.agents.state_store import StateReader
from arbstream.streams.backoff import backoff
from arbstream.streams.errors import ArbstreamError

log = logging.getLogger(__name__)

#: How long a poll waits for records.
POLL_TIMEOUT_MS = 100
READY_MESSAGE = "arbstream worker ready"
#: How long, when it stops, the worker waits for a batch in flight, then for each client
#: to close; and the same when the broker does not answer (there is nothing to wait for).
CLOSE_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_AWAY_S = 1.0
#: The longest wait between two attempts to rebuild a failed partition.
REBUILD_BACKOFF_MAX_S = 5.0
#: How often the worker asks whether the broker still answers (agents.kafka.probe).
BROKER_PROBE_EVERY_S = 1.0
#: How often the worker logs its batch statistics.
STATS_INTERVAL_S = 10.0


class Worker:
    """The consumer, the processors of the assigned partitions, and the rebalance logic."""

    def __init__(
        self, config: Deployment, settings: WorkerSettings, counts: dict[str, int]
    ) -> None:
        self.config = config
        self.settings = settings
        self.topics = Topics(config.topic_prefix)
        self.group_id = self.topics.group
        self._placement = OutputPlacement(self.topics, counts)
        self.processors: dict[int, PartitionProcessor] = {}
        self._stopping = asyncio.Event()
        self.ready = False
        self._has_run = False  # ready once, at least
        self._broker = BrokerWatch(settings.kafka.bootstrap, BROKER_PROBE_EVERY_S)
        self._error: BaseException | None = None
        self._taken = asyncio.Event()  # a partition task emptied its inbox
        self._next_report = time.monotonic() + STATS_INTERVAL_S
        self._reader = StateReader(settings.kafka, self.topics.state)
        self.metrics = WorkerMetrics(
            config,
            self.topics.ticks,
            WorkerView(
                ready=lambda: self.serving,
                engines=lambda: [p.engine for p in self.processors.values()],
                lag=self.lag,
                partitions=counts[self.topics.ticks],
            ),
        )
        t = self.topics
        self.health = PartitionHealth(settings.kafka, [*t.all(), t.state])
        self.metrics.registry.register(self.health)
        if not config.metric_instruments:
            log.warning(
                "metrics: no instrument is listed ([metrics] instruments, feed symbols, "
                'venue units): every instrument is counted as "other", without gauges'
            )
        self._consumer = settings.kafka.consumer(
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            # A multi-megabyte garbage record must reach the engine (and the dlq) too.
            max_partition_fetch_bytes=TICKS_MAX_MESSAGE_BYTES,
            fetch_max_bytes=2 * TICKS_MAX_MESSAGE_BYTES,
            # aiokafka's records as decoded: the partitions read offset, timestamp, value
            value_deserializer=bare_records,
        )
        transactional = settings.guarantee == "exactly-once"
        self._commits = Commits(transactional, self._consumer)
        self._loader = PartitionLoader(
            config, settings.kafka, self._consumer, self._reader, transactional=transactional
        )

    @property
    def processed(self) -> int:
        return self.metrics.batches.records

    def lag(self) -> dict[int, int]:
        """Records not yet evaluated, per assigned ticks partition (held quiet batches
        count as done), as of the consumer's last fetch (the ticks producers are not
        transactional, so the high watermark is the end a read_committed consumer
        sees)."""
        out = {}
        for p, processor in self.processors.items():
            try:
                end = self._consumer.highwater(processor.tp)
            except AssertionError:  # aiokafka: not assigned (a rebalance is under way)
                continue
            if end is not None:  # None until the first fetch: unknown, not 0
                out[p] = max(0, end - processor.next_offset)
        return out

    # -- lifecycle --------------------------------------------------------------------

    @property
    def broker_answers(self) -> bool:
        """The broker answered the last probe. The clients ride an outage out on their
        own; a batch in flight waits for its commit, which completes or aborts when the
        broker is back (or, if the worker stops first, is left open: see ``_close``)."""
        return self._broker.answers

    @property
    def serving(self) -> bool:
        """Ready: partitions loaded, and the broker answers."""
        return self.ready and self.broker_answers

    async def run(self) -> None:
        """Consume until ``stop``; then let each partition finish its batch, and leave."""
        shorten_first_partition_retry()
        watch = asyncio.create_task(self._broker.run(), name="broker watch")
        health = asyncio.create_task(self.health.run(), name="partition health")
        try:
            self._consumer.subscribe([self.topics.ticks], listener=_Listener(self))
            try:
                # (a stop while the clients start, the broker gone, ends the wait)
                started = await self._unless_stopped(self._reader.start())
                started = started and await self._unless_stopped(self._consumer.start())
                if not started:
                    await close_quietly(self._consumer, self._close_timeout())
                    return
            except KafkaError as exc:
                await close_quietly(self._consumer, self._close_timeout())
                reason = (
                    self._refused(exc) or f"cannot join the consumer group {self.group_id}: {exc}"
                )
                raise AgentError(reason) from exc
            try:
                await self._fetch_loop()
            finally:
                await self._drop_all()
                await close_quietly(self._consumer, self._close_timeout())
        finally:
            watch.cancel()
            health.cancel()
            await close_quietly(self._reader, self._close_timeout())
        if isinstance(self._error, KafkaRefusedError):
            raise self._error
        if self._error is not None:
            why = self._error if isinstance(self._error, AgentError) else repr(self._error)
            raise AgentError(f"worker stopped: {why}") from self._error

    def stop(self) -> None:
        self._stopping.set()

    async def _unless_stopped(self, step: Awaitable[object]) -> bool:
        """Await ``step`` unless the worker is told to stop first (then it is cancelled:
        False)."""
        task = asyncio.ensure_future(step)
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if task.done():
            task.result()  # its error, if it failed
            return True
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        return False

    def fail(self, error: BaseException) -> None:
        """Stop, and make ``run`` raise ``error`` once everything is closed (a right
        Kafka denies is worded as such)."""
        refused = None if isinstance(error, AgentError) else self._refused(error)
        if refused is not None:
            # until the worker was first ready, a right it lacks is a setup error (status 2)
            error = AgentError(refused) if self._has_run else KafkaRefusedError(refused)
        log.error("worker failing: %s", error if isinstance(error, ArbstreamError) else repr(error))
        if self._error is None:
            self._error = error
        self._stopping.set()

    def _refused(self, error: BaseException) -> str | None:
        """One line when ``error`` (or what caused it) is Kafka denying this worker a
        right: an ACL removed while it runs, or missing for a transactional id (the one
        right that cannot be checked before it is used)."""
        kafka = self.settings.kafka
        seen: BaseException | None = error
        while seen is not None:
            if isinstance(seen, DeliveryError) and isinstance(seen.cause, AUTHORIZATION_ERRORS):
                return denial(seen.cause, kafka, "Write", seen.topic)
            if isinstance(seen, AUTHORIZATION_ERRORS):
                return denial(seen, kafka, "Write")
            seen = seen.__cause__
        return None

    async def _fetch_loop(self) -> None:
        """Hand fetched records to their partitions' tasks. While an inbox holds
        ``batch_max`` records or more, stop taking records from the consumer (whose
        fetch buffer is bounded), so memory stays bounded when the engine falls behind.
        (Pausing the partition instead made aiokafka drop and refetch its buffer: 4x
        slower.)"""
        consumer = self._consumer
        stopping = self._stopping
        taken = self._taken
        batch_max = self.settings.batch_max
        while not stopping.is_set():
            try:
                fetched = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=batch_max)
            except AUTHORIZATION_ERRORS as exc:
                self.fail(
                    AgentError(
                        f"{denial(exc, self.settings.kafka, 'Read')}; nothing is lost: once "
                        "granted, a worker resumes each partition from its committed state"
                    )
                )
                return
            for tp, messages in fetched.items():
                processor = self.processors.get(tp.partition)
                if processor is not None:
                    processor.deliver(messages)
            while not stopping.is_set() and any(
                len(p.inbox) >= batch_max for p in self.processors.values()
            ):
                taken.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(taken.wait(), POLL_TIMEOUT_MS / 1000)
            if time.monotonic() >= self._next_report:
                self._report()

    def _report(self) -> None:
        """Log the batches of the last ``STATS_INTERVAL_S`` (all partitions together)."""
        batches = self.metrics.batches
        window, batches.window = batches.window, BatchStats()
        if window.batches:
            log.info("last %.0f s: %s", STATS_INTERVAL_S, window.report())
        self._next_report = time.monotonic() + STATS_INTERVAL_S

    async def _on_partition_error(self, processor: PartitionProcessor, error: Exception) -> bool:
        """A batch or commit failed: nothing of it is committed, but the engine has moved
        on. Do what the partition's commit policy answers; return whether it goes on."""
        p = processor.tp.partition
        refused = self._refused(error)
        do = processor.policy.failed(failure_of(error, refused is not None))
        if do is Do.DROP:
            log.warning("%s; dropping partition %d until the next rebalance", error, p)
            self.processors.pop(p, None)
            processor.abandon()
            self._consumer.pause(processor.tp)
            await close_quietly(processor.producer)
        elif do is Do.STOP:
            self.fail(stop_reason(error, refused, processor))
        elif do is Do.REBUILD:
            # A new producer under the same id settles this one's transactions (the
            # failed one, and a commit whose markers may still be in flight) before the
            # state is read back. (Had this worker left the group, the partition's new
            # owner would have fenced it: Do.DROP.)
            log.warning(
                "partition %d: batch failed (%r); rebuilding from committed state", p, error
            )
            await close_quietly(processor.producer, self._close_timeout())
            return await self._rebuild(processor)
        return False

    async def _rebuild(self, processor: PartitionProcessor) -> bool:
        """Load the partition's committed state again, with a new producer. While the
        broker is away, wait for it with capped, jittered backoff (asking only whether
        its port answers, which costs nothing and logs nothing); a Kafka error while
        loading is retried the same way. Returns whether the processor goes on."""
        p = processor.tp.partition
        delays = backoff(REBUILD_BACKOFF_MAX_S)
        while not (self._stopping.is_set() or processor.closing):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), next(delays))
            if self._stopping.is_set() or processor.closing:
                break
            if not await broker_reachable(self.settings.kafka.bootstrap):
                continue
            try:
                processor.install((await self._loader.load([p]))[p])
            except AUTHORIZATION_ERRORS as exc:
                self.fail(exc)
                return False
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("partition %d: rebuild failed (%r); trying again", p, exc)
            except Exception as exc:
                self.fail(exc)
                return False
            else:
                return True
        return False

    # -- assignment -------------------------------------------------------------------

    async def on_revoked(self) -> None:
        """Every partition finishes its batch in flight (it commits or aborts) and is
        dropped; the assignment that follows rebuilds each from the committed state."""
        self.ready = False
        await self._drop_all()

    async def _drop_all(self) -> None:
        processors, self.processors = self.processors, {}
        if processors:
            log.info(
                "closing partitions at offsets %s",
                {p: x.next_offset for p, x in sorted(processors.items())},
            )
        await asyncio.gather(*(self._close(p) for p in processors.values()))
        timeout = self._close_timeout()
        await asyncio.gather(*(close_quietly(p.producer, timeout) for p in processors.values()))

    def _close_timeout(self) -> float:
        """How long a close may wait on Kafka: not long when the broker does not answer."""
        return CLOSE_TIMEOUT_S if self.broker_answers else CLOSE_TIMEOUT_AWAY_S

    async def _close(self, processor: PartitionProcessor) -> None:
        """Let a partition finish its batch in flight, for a bounded time: a batch that
        cannot commit (the broker is away) is left open, and the partition's next owner
        aborts it when its producer starts, then redoes the work from the committed
        state."""
        timeout = self._close_timeout()
        closing = asyncio.ensure_future(processor.close())
        done, _ = await asyncio.wait({closing}, timeout=timeout)
        if not done:
            # Cancelled, not awaited: its transaction stays open (see _transaction).
            closing.cancel()
            processor.abandon()
            log.warning(
                "partition %d: its batch did not finish within %.0f s; left uncommitted",
                processor.tp.partition,
                timeout,
            )

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        mine = sorted(tp.partition for tp in assigned if tp.topic == self.topics.ticks)
        # No fetching while the partitions load: each starts at its stored offset.
        self._consumer.pause(*[TopicPartition(self.topics.ticks, p) for p in mine])
        loaded = await self._loader.load(mine)
        for p in mine:
            tp = TopicPartition(self.topics.ticks, p)
            processor = PartitionProcessor(
                tp, loaded[p], self._placement, self.topics, self._commits, self.metrics.batches
            )
            self.processors[p] = processor
            processor.start(self._on_partition_error, self._taken)
        settle_heap()  # the engines are built: no full collection walks them mid-batch
        self._consumer.resume(*[TopicPartition(self.topics.ticks, p) for p in mine])
        self.ready = self._has_run = True
        log.info("%s: partitions %s (%s)", READY_MESSAGE, mine, self.settings.guarantee)


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
