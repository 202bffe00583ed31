"""One assigned ticks partition: its engine, its transactional producer, and the task
that runs its batches (agents/worker.py explains the whole).

Each partition runs in its own task, so one partition's commit round trips overlap
another's engine work, and a slow commit holds up only its own partition. The fetch
loop appends records to a partition's inbox; the task takes everything there as one
batch and runs it as one transaction.

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

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import ProducerFenced

from agents.errors import AgentError
from agents.kafka.aiokafka_private import transaction_error
from agents.kafka.topics import Topics
from agents.metrics import BatchMetrics, TransactionTimes
from agents.outputs import DeliveryError, KeyPlacement, OutputBatches
from agents.state_store import OFFSET_KEY
from streams.batch import Encoded, encode_values
from streams.engine import Engine

log = logging.getLogger(__name__)

#: The group's offset (for lag monitoring only: the state holds the offset the worker
#: resumes from) rides along with a batch at most this often, and after this much idle
#: time on its own. Each costs two more round trips in the transaction.
OFFSETS_EVERY_S = 1.0
OFFSETS_IDLE_S = 0.05
#: How long a failed batch's abort may wait for the broker.
ABORT_TIMEOUT_S = 5.0
#: A batch starts at least this long after the previous one began. 0: at once, with what
#: arrived meanwhile (the batch grows with the load by itself). Measured at 5,000
#: ticks/s against 10 ms (README, "commit cadence"); kept as the switch for that A/B.
MIN_TRANSACTION_INTERVAL_S = 0.0
#: A quiet batch is held while the partition's last commit is younger than this; the
#: held batches commit with the next batch that has outputs, or this long after the
#: last commit, whichever is first. Measured at 5,000 ticks/s (README, "Quiet
#: batches"): a third fewer commits, and a lower p99 in nine pairs of ten (one equal).
QUIET_COMMIT_EVERY_S = 1.0


class PartitionLostError(AgentError):
    """Another worker owns the partition now (this worker's producer was fenced)."""


class BatchDeliveryError(AgentError):
    """Kafka refused part of a batch's outputs; the transaction was aborted."""

    def __init__(self, tp: TopicPartition, start: int, end: int, error: DeliveryError) -> None:
        super().__init__(
            f"partition {tp.partition}: the outputs of ticks offsets {start}-{end - 1} were "
            f"not accepted ({error}); nothing of those ticks was committed"
        )
        self.start = start
        self.permanent = error.permanent


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
    """The engine, producer, inbox and task of one assigned ticks partition."""

    def __init__(
        self,
        tp: TopicPartition,
        loaded: Loaded,
        topics: Topics,
        counts: dict[str, int],
        group_id: str,
        metrics: BatchMetrics,
    ) -> None:
        self.tp = tp
        self._metrics = metrics
        self.engine = loaded.engine
        self.producer = loaded.producer
        self.next_offset = loaded.next_offset  # the next record to evaluate
        self._committed_offset = loaded.next_offset  # where the committed state resumes
        self.inbox: list[Any] = []
        self._topics = topics
        self._group_id = group_id
        self._dlq_partition = tp.partition % counts[topics.dlq]
        self._placement = KeyPlacement(counts)
        self._wake = asyncio.Event()
        self._closing = False
        self._failed = False  # its error handler gave it up
        self._taken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._offsets_due = False  # the group's offset is behind next_offset
        self._offsets_sent_at = 0.0
        self._began = 0.0  # when the last batch began (monotonic)
        self._committed_at = 0.0  # when the last transaction committed (monotonic)
        # the quiet batches evaluated since: (when, in ms since the epoch; their
        # records' Kafka timestamps)
        self._held: list[tuple[float, list[float]]] = []

    def install(self, loaded: Loaded) -> None:
        """Continue from a rebuilt state (after a failed batch)."""
        self.engine = loaded.engine
        self.producer = loaded.producer
        self.next_offset = self._committed_offset = loaded.next_offset
        self.inbox.clear()
        self._held.clear()  # evaluated again by the rebuilt engine

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
        """The ticks offsets evaluated but not committed: [start, end)."""
        return self._committed_offset, self.next_offset

    @property
    def closing(self) -> bool:
        """Asked to stop (a rebalance, the worker stopping) or given up."""
        return self._closing

    async def close(self) -> None:
        """Finish the batch in flight (it commits or aborts), then stop the task."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            if (self._held or self._offsets_due) and not self._failed:
                # Commit the held batches, and leave the group's offset where the state
                # is (for lag monitoring). Should it fail, the next owner evaluates the
                # held batches again.
                with contextlib.suppress(Exception):
                    await self._settle()
        self.inbox.clear()

    async def _run(self, on_error: ErrorHandler) -> None:
        while not self._closing:
            if not self.inbox and not await self._wait(self._idle_timeout()):
                await self._guarded(self._settle, on_error)
                continue
            self._wake.clear()
            if self._closing:
                break
            if MIN_TRANSACTION_INTERVAL_S:  # 0 but in an A/B run: no clock reads per batch
                pause = self._began + MIN_TRANSACTION_INTERVAL_S - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
                self._began = time.monotonic()
            batch = self._take()
            if not await self._guarded(functools.partial(self.process, batch), on_error):
                return

    def _idle_timeout(self) -> float | None:
        """How long to wait for records before committing what is due on its own: held
        batches when the last commit turns QUIET_COMMIT_EVERY_S old, the group's offset
        after OFFSETS_IDLE_S, nothing otherwise."""
        if self._held:
            return max(0.0, self._committed_at + QUIET_COMMIT_EVERY_S - time.monotonic())
        return OFFSETS_IDLE_S if self._offsets_due else None

    async def _wait(self, timeout: float | None) -> bool:
        """Until records arrive or the processor closes (True), or ``timeout`` (False)."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _guarded(self, step: Callable[[], Awaitable[object]], on_error: ErrorHandler) -> bool:
        try:
            await step()
        except Exception as exc:  # the worker decides: rebuild, drop, or stop everything
            if not await on_error(self, exc):
                self._closing = self._failed = True
                return False
        return True

    # -- one transaction ----------------------------------------------------------------

    async def process(self, messages: list[Any]) -> int:
        """Evaluate one batch, then commit it in one transaction with its outputs, or
        hold it when it is quiet (see the module's docstring); return how many records
        it processed.

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
        if not outputs and time.monotonic() - self._committed_at < QUIET_COMMIT_EVERY_S:
            self._held.append((time.time() * 1000.0, timestamps))
            return len(batch)
        await self._commit(outputs, timestamps, wait_s, t0)
        return len(batch)

    async def _settle(self) -> None:
        """Commit what is due while no records arrive: the held batches, or else the
        group's offset on its own."""
        if self._held:
            await self._commit([], [], 0.0, time.perf_counter())
        else:
            async with self._transaction():
                await self._add_offsets(self.next_offset)

    async def _commit(
        self, outputs: list[Encoded], timestamps: list[float], wait_s: float, t0: float
    ) -> None:
        """One transaction: ``outputs``, the engine's state changes (of the held batches
        too) and the next offset; the group's offset when due."""
        topics = self._topics
        out = OutputBatches(self.producer, self._placement)
        keyed = out.keyed
        dlq, dlq_partition = topics.dlq, self._dlq_partition
        names = {"spreads": topics.spreads, "signals": topics.signals, "basis": topics.basis}
        start, next_offset = self._committed_offset, self.next_offset
        async with self._transaction():
            for stream, key, data in outputs:
                if key is None:
                    out.to(dlq, dlq_partition, None, data)
                else:
                    keyed(names[stream], key, data)
            state, p = topics.state, self.tp.partition
            for entry_key, entry in self.engine.changes():
                out.to(state, p, entry_key.encode(), entry)
            out.to(state, p, OFFSET_KEY.encode(), str(next_offset).encode())
            t1 = time.perf_counter()
            try:
                await out.flush()  # every send acknowledged, or no commit
            except DeliveryError as exc:
                raise BatchDeliveryError(self.tp, start, next_offset, exc) from exc
            t2 = time.perf_counter()
            if time.monotonic() - self._offsets_sent_at >= OFFSETS_EVERY_S:
                await self._add_offsets(next_offset)
            else:
                self._offsets_due = True
            t3 = time.perf_counter()
        # no phases for a transaction of held batches only: it ran no batch of its own
        times = (
            TransactionTimes(wait_s, t1 - t0, t2 - t1, t3 - t2, time.perf_counter() - t3)
            if timestamps
            else None
        )
        held, self._held = self._held, []
        self._metrics.committed(next_offset - start, times, timestamps, self.engine, held)
        self._committed_offset = next_offset
        self._committed_at = time.monotonic()

    async def _add_offsets(self, next_offset: int) -> None:
        """Put the group's offset into the open transaction."""
        await self.producer.send_offsets_to_transaction({self.tp: next_offset}, self._group_id)
        self._offsets_sent_at = time.monotonic()
        self._offsets_due = False

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
