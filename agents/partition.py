"""One assigned ticks partition: its engine, its producer, and the task that runs its
batches (agents/worker.py explains the whole).

Each partition runs in its own task, so one partition's commit round trips overlap
another's engine work, and a slow commit holds up only its own partition. The fetch
loop appends records to a partition's inbox; the task takes everything there as one
batch and commits it: exactly once, as one transaction; at least once, its outputs
first, acknowledged, then its state and offset in one record batch, which Kafka appends
whole or not at all (docs/guarantees.md). At least once, a batch's state is sent with
the next batch's outputs (one round trip per batch, not two): it follows outputs already
acknowledged, and when no batch follows, the partition holds it as it holds a quiet
batch (below), for at most ``hold_quiet_s``.

A quiet batch (no outputs: its spreads throttled, or an FX rate reaching a partition
whose instruments do not use it) is held instead: its state and offset commit with the
next transaction, so that a partition that only follows a currency commits once a
second instead of once a tick. Exactly once holds: outputs still commit only with the
state and offset that made them, and a held batch that never commits (the worker
dies, a later batch fails) is evaluated again from the committed state, with the same
result. A stopping worker commits what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import ProducerFenced

from arbstream.agents import commit_policy
from arbstream.agents.batch_failures import BatchDeliveryError, PartitionLostError
from arbstream.agents.commit_policy import CommitPolicy, Do, Failure
from arbstream.agents.errors import AgentError
from arbstream.agents.group_offset import SETTLE_TIMEOUT_S, GroupOffset
from arbstream.agents.kafka.aiokafka_private import transaction_error
from arbstream.agents.kafka.topics import Topics
from arbstream.agents.metrics import BatchMetrics, TransactionTimes
from arbstream.agents.outputs import DeliveryError, OutputBatches
from arbstream.agents.routing import OutputPlacement
from arbstream.agents.state_store import OFFSET_KEY
from arbstream.streams.batch import Encoded, encode_values
from arbstream.streams.engine import Engine

log = logging.getLogger(__name__)

#: How long a failed batch's abort may wait for the broker.
ABORT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Commits:
    """How a worker's partitions commit: ``transactional`` (exactly once) or not (at
    least once); either way the group's offsets (for lag monitoring) through
    ``consumer``."""

    transactional: bool
    consumer: AIOKafkaConsumer


@dataclass
class Loaded:
    """A partition's committed state, ready to run: what a (re)load gives a processor."""

    engine: Engine
    producer: AIOKafkaProducer
    next_offset: int


#: Called with a processor and the error of its batch; returns whether the processor
#: was rebuilt (and should go on) or is finished.
ErrorHandler = Callable[["PartitionProcessor", Exception], Awaitable[bool]]


class PartitionProcessor:
    """The engine, producer, inbox and task of one assigned ticks partition: the I/O
    driver of its commit policy (agents/commit_policy.py)."""

    def __init__(
        self,
        tp: TopicPartition,
        loaded: Loaded,
        placement: OutputPlacement,
        topics: Topics,
        commits: Commits,
        metrics: BatchMetrics,
    ) -> None:
        self.tp = tp
        self._metrics = metrics
        self.engine = loaded.engine
        self.producer = loaded.producer
        self.next_offset = loaded.next_offset  # the next record to evaluate
        # everything before it is committed, or (at least once) its outputs acknowledged
        # and its state due
        self._committed_offset = loaded.next_offset
        self._durable_offset = loaded.next_offset  # where the written state resumes
        # at least once: the state changes (and offset) of the last batch with outputs,
        # acknowledged; written with the next commit
        self._state_due: list[tuple[bytes, bytes | None]] | None = None
        self.policy = CommitPolicy(commit_policy.WORKER_RULES, time.monotonic())
        self.inbox: list[Any] = []
        self._state_topic = topics.state
        self._commits = commits
        self._placement = placement
        self._wake = asyncio.Event()
        self._taken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # the quiet batches evaluated since the last commit, for its metrics: (when, in
        # ms since the epoch; their records' Kafka timestamps)
        self._held: list[tuple[float, list[float]]] = []
        # committed after the state, off the batch's path
        self._group_offset = GroupOffset(commits.consumer, tp)

    def install(self, loaded: Loaded) -> None:
        """Continue from a rebuilt state (after a failed batch)."""
        self.engine = loaded.engine
        self.producer = loaded.producer
        self.next_offset = self._committed_offset = loaded.next_offset
        self._durable_offset = loaded.next_offset
        self._state_due = None  # evaluated again by the rebuilt engine
        self.inbox.clear()
        self._held.clear()  # evaluated again by the rebuilt engine
        self.policy.rebuilt(time.monotonic())

    # -- the task -----------------------------------------------------------------------

    def start(self, on_error: ErrorHandler, taken: asyncio.Event) -> None:
        """Run batches as records arrive; set ``taken`` whenever the inbox is emptied
        (the fetch loop waits on it while an inbox is full)."""
        self._taken = taken
        self._task = asyncio.create_task(self._run(on_error), name=f"partition-{self.tp}")

    def deliver(self, messages: list[Any]) -> None:
        """Append fetched records."""
        self.inbox.extend(messages)
        self._wake.set()

    def _take(self) -> list[Any]:
        batch, self.inbox = self.inbox, []
        self._taken.set()
        return batch

    @property
    def uncommitted(self) -> tuple[int, int]:
        """The ticks offsets evaluated but not in the written state: [start, end)."""
        return self._durable_offset, self.next_offset

    @property
    def closing(self) -> bool:
        """Asked to stop (a rebalance, the worker stopping) or given up."""
        return self.policy.closing

    async def close(self) -> None:
        """Finish the batch in flight (it commits or aborts), then commit what the policy
        says is due: the held batches and the group's offset (for lag monitoring). Should
        that fail, the next owner evaluates the held batches again."""
        self.policy.stop()
        self._wake.set()
        try:
            if self._task is not None:
                await self._task
            do = self.policy.settle()
            if do is not Do.WAIT:
                try:
                    await self._commit([], [], 0.0, time.perf_counter(), do)
                except Exception:
                    self.policy.failed(Failure.TRANSIENT)
            await self._group_offset.settled(SETTLE_TIMEOUT_S)
        finally:
            self.abandon()  # a close cut short leaves no commit behind
        self.inbox.clear()

    def abandon(self) -> None:
        """Stop committing the group's offset: the partition is another worker's now
        (a retry of an old commit could write over the new owner's offset)."""
        self._group_offset.abandon()

    async def _run(self, on_error: ErrorHandler) -> None:
        policy = self.policy
        while not policy.closing:
            if not self.inbox:
                woken = await self._wait(policy.idle_wait(time.monotonic()))
                if policy.closing:
                    break
                if not woken:
                    do = policy.time_passed(time.monotonic())
                    if do is not Do.WAIT:
                        commit = functools.partial(
                            self._commit, [], [], 0.0, time.perf_counter(), do
                        )
                        if not await self._guarded(commit, on_error):
                            return
                    continue
            self._wake.clear()
            batch = self._take()
            if not await self._guarded(functools.partial(self.process, batch), on_error):
                return

    async def _wait(self, timeout: float | None) -> bool:
        """Until records arrive or the processor closes (True), or ``timeout`` (False)."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _guarded(self, step: Callable[[], Awaitable[object]], on_error: ErrorHandler) -> bool:
        """Run ``step``; on an error, the worker acts on what the policy answers
        (rebuild, drop, stop) and says whether the processor goes on."""
        try:
            await step()
        except Exception as exc:
            return await on_error(self, exc)
        return True

    # -- one transaction ----------------------------------------------------------------

    async def process(self, messages: list[Any]) -> int:
        """Evaluate one batch, then commit it in one transaction with its outputs, or
        hold it when the policy says so; return how many records it processed.

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
        batch = messages[skip:]
        timestamps = [m.timestamp for m in batch]
        # a producer's clock may be ahead of ours: no negative waits
        wait_s = max(0.0, time.time() - min(timestamps) / 1000.0)
        t0 = time.perf_counter()
        offsets: list[int] = [m.offset for m in batch]
        # the engine's loop over the batch, and the outputs' encoding, are compiled with
        # it (streams/batch.py)
        outputs = encode_values(self.engine, [m.value for m in batch], offsets)
        self.next_offset = offsets[-1] + 1
        do = self.policy.evaluated(bool(outputs), time.monotonic())
        if do is Do.HOLD:
            self._held.append((time.time() * 1000.0, timestamps))
        else:
            await self._commit(outputs, timestamps, wait_s, t0, do)
        return len(batch)

    async def _commit(
        self, outputs: list[Encoded], timestamps: list[float], wait_s: float, t0: float, do: Do
    ) -> None:
        """One transaction of the kind ``do`` says: ``outputs``, the engine's state
        changes (of the held batches too) and the next offset, with or without the
        group's offset; or the group's offset alone."""
        next_offset = self.next_offset
        if do is Do.COMMIT_OFFSETS:
            self._group_offset.want(self._durable_offset)
            await self._group_offset.settled(SETTLE_TIMEOUT_S)
            self.policy.committed(time.monotonic())
            return
        out = OutputBatches(self.producer, self._placement.keys)
        place, p = self._placement, self.tp.partition
        start = self._committed_offset
        async with self._unit():
            for stream, key, data in outputs:
                topic, partition = place(stream, key, p)
                out.to(topic, partition, key, data)
            state, transactional = self._state_topic, self._commits.transactional
            changes = [(k.encode(), v) for k, v in self.engine.changes()]
            changes.append((OFFSET_KEY.encode(), str(next_offset).encode()))
            if transactional:
                for key, value in changes:
                    out.to(state, p, key, value)
            t1 = time.perf_counter()
            if transactional:
                await self._flush(out, start)  # every send acknowledged, or no commit
            else:
                await self._at_least_once(out, changes, start)
            t2 = time.perf_counter()
        if transactional:
            self._durable_offset = next_offset  # the transaction held the state
        if do is Do.COMMIT_WITH_OFFSETS:
            self._group_offset.want(self._durable_offset)
        # no phases for a transaction of held batches only: it ran no batch of its own
        times = (
            TransactionTimes(wait_s, t1 - t0, t2 - t1, time.perf_counter() - t2)
            if timestamps
            else None
        )
        held, self._held = self._held, []
        self._metrics.committed(next_offset - start, times, timestamps, self.engine, held)
        self._committed_offset = next_offset
        self.policy.committed(time.monotonic(), state_due=self._state_due is not None)

    async def _at_least_once(
        self, out: OutputBatches, changes: list[tuple[bytes, bytes | None]], start: int
    ) -> None:
        """Send ``out``'s outputs with the state due, and make this batch's state
        (``changes``) due; with no outputs, write the state due, then this one.

        Outputs are acknowledged before the state that follows them is written, so a
        crash repeats outputs (with their seq) and never loses one. Each state is one
        record batch, which Kafka appends whole: a crash while it is written leaves the
        state before or after, never a mix. Two states are never sent together: Kafka
        could refuse the first (too large) and append the second, which would resume
        past the first's outputs' ticks as if it had been written."""
        state, p = self._state_topic, self.tp.partition
        due = self._state_due
        if out.holding:
            if due is not None:
                out.whole(state, p, due)
            await self._send_at_least_once(out, start, start if due is not None else None)
            if due is not None:
                self._durable_offset = start
            self._state_due = changes
            return
        if due is not None:
            out.whole(state, p, due)
            await self._send_at_least_once(out, start, start)
            self._durable_offset = start
            self._state_due = None
        if self.next_offset > self._durable_offset or len(changes) > 1:
            out.whole(state, p, changes)
            await self._send_at_least_once(out, start, self.next_offset)
            self._durable_offset = self.next_offset

    async def _send_at_least_once(
        self, out: OutputBatches, start: int, state_resumes: int | None
    ) -> None:
        """``out.flush``, where ``out`` holds a state resuming at ``state_resumes`` (None:
        outputs only). A refusal names the ticks whose outputs or state it concerns, and
        where the written state resumes: past the state sent with refused outputs, when
        Kafka took that state."""
        try:
            await out.flush()
        except DeliveryError as exc:
            state = (self._state_topic, self.tp.partition)
            if state_resumes is not None and state in exc.acknowledged:
                self._durable_offset = state_resumes
            if exc.topic == self._state_topic and state_resumes is not None:
                # the ticks whose state it was; their outputs were acknowledged before
                first, end, refused_state = self._durable_offset, state_resumes, True
            else:
                first, end, refused_state = start, self.next_offset, False
            raise BatchDeliveryError(
                self.tp, first, end, exc, refused_state, self._durable_offset
            ) from exc

    async def _flush(self, out: OutputBatches, start: int) -> None:
        """Send what ``out`` holds and wait until Kafka has acknowledged all of it."""
        try:
            await out.flush()
        except DeliveryError as exc:
            raise BatchDeliveryError(self.tp, start, self.next_offset, exc) from exc

    def _unit(self) -> contextlib.AbstractAsyncContextManager[None]:
        """What one commit runs in: a transaction, or (at least once) nothing."""
        if self._commits.transactional:
            return self._transaction()
        return contextlib.nullcontext()

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """Begin a transaction, commit it when the block ends, abort it when the block
        raises. A fenced producer means another worker owns the partition now.

        The abort is bounded (it waits for the broker), and skipped when the task is
        cancelled (a stop that cannot wait): a transaction left open is aborted by the
        partition's next producer when it starts, before anyone reads its state."""
        producer = self.producer
        await producer.begin_transaction()
        try:
            yield
            await producer.commit_transaction()
        except ProducerFenced as exc:
            raise PartitionLostError(f"{self.tp}: fenced by another worker") from exc
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            # (taken before the abort, which forgets it)
            cause = transaction_error(producer)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.abort_transaction(), ABORT_TIMEOUT_S)
            if cause is not None and cause is not exc:
                raise cause from exc
            raise
