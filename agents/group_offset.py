"""The consumer group's committed offset of one ticks partition, committed in the
background.

It is for lag monitoring only: a worker resumes from the offset stored with its state
(agents/recovery.py), so the group's offset is committed after the state that resumes
there, outside any transaction, where a refusal (a rebalance under way) costs nothing.
Sent with the transaction it cost the batch that carried it two more round trips to the
coordinators, once a second (docs/performance.md). One request at a time
(agents/kafka/aiokafka_private.py, ``commit_once``), tried again here while the
coordinator is away, so that abandoning a commit cancels it and leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from arbstream.agents.kafka.aiokafka_private import commit_once

log = logging.getLogger(__name__)

#: How long a partition waits for its group offset's commit when it goes idle or closes:
#: bounded, since the offset only feeds the lag gauges (a commit cut short is retried by
#: the partition's next owner or its next batch).
SETTLE_TIMEOUT_S = 5.0
#: The pause before a commit the broker could not take (its coordinator away) is tried
#: again, unless a newer offset is wanted by then.
RETRY_S = 0.5


class GroupOffset:
    """One committer task per partition, which commits the latest offset wanted until
    no newer one is: offsets never go back, and none wanted is dropped."""

    def __init__(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        self._consumer = consumer
        self._tp = tp
        self._task: asyncio.Task[None] | None = None
        self._wanted: int | None = None  # still to commit

    def want(self, next_offset: int) -> None:
        """Commit the group's offset up to ``next_offset`` (the state that resumes there
        being committed), in the background."""
        self._wanted = next_offset
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._commit_wanted(), name=f"group-offset-{self._tp}")

    async def settled(self, timeout_s: float) -> None:
        """Wait until what is wanted is committed (or its failure logged), for at most
        ``timeout_s``; past it, give up (it is for monitoring)."""
        task = self._task
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if done:
            self._task = None
        else:
            self.abandon()

    def abandon(self) -> None:
        """Stop committing: the partition is another worker's now (a retry of an old
        commit could write over the new owner's offset)."""
        self._wanted = None
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _commit_wanted(self) -> None:
        while self._wanted is not None:
            offset, self._wanted = self._wanted, None
            await self._commit(offset)

    async def _commit(self, next_offset: int) -> None:
        try:
            await commit_once(self._consumer, {self._tp: next_offset})
        except KafkaError as exc:
            log.debug("partition %d: group offset not committed (%r)", self._tp.partition, exc)
            # A rebalance (unknown member, illegal generation, rebalance in progress) is
            # not retriable: the partition may be another member's, so it is given up.
            if exc.retriable and self._wanted is None:  # nothing newer: this one again
                self._wanted = next_offset
                await asyncio.sleep(RETRY_S)
        except Exception:
            log.warning(
                "partition %d: group offset not committed", self._tp.partition, exc_info=True
            )
