"""The workers' state changelog: reading back the committed state of ticks partitions.

Partition p of ``<prefix>.worker-state`` (compacted) holds the engine state of ticks
partition p as streams/changelog.py entries, keyed by entry key, plus one entry of its own:
``OFFSET_KEY``, the next ticks offset to process. The worker writes both in the same
transaction as the outputs they account for, so the committed changelog always
describes an engine that has processed exactly the ticks below that offset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from aiokafka import TopicPartition

from arbstream.agents.errors import AgentError
from arbstream.agents.kafka.clients import KafkaClients

log = logging.getLogger(__name__)

#: The entry that holds the next ticks offset (ASCII decimal).
OFFSET_KEY = "ticks-offset"
#: Recovery reads at most this much per fetch and partition.
FETCH_BYTES = 8 * 1024 * 1024


class RecoveredState:
    """One ticks partition's committed state: engine entries and the next offset."""

    def __init__(self, entries: dict[str, bytes]) -> None:
        raw_offset = entries.pop(OFFSET_KEY, None)
        self.entries = entries
        self.next_offset: int | None = None if raw_offset is None else int(raw_offset)


class StateReader:
    """A read_committed, group-less consumer that reads state partitions to their end."""

    def __init__(self, kafka: KafkaClients, topic: str) -> None:
        self._topic = topic
        self._consumer = kafka.consumer(
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            # the consumer's own reset of a newly assigned partition agrees with the
            # seek_to_beginning below, whichever the broker answers last
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=FETCH_BYTES,
            fetch_max_bytes=4 * FETCH_BYTES,
            fetch_max_wait_ms=20,
        )

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """First offsets of any topic's partitions (a lookup, no assignment needed)."""
        return dict(await self._consumer.beginning_offsets(tps))

    async def read(self, partitions: Iterable[int]) -> dict[int, RecoveredState]:
        """The committed state of each partition.

        Call it only after the partition's transactional producer has been initialised:
        that fences the previous owner and settles its open transaction, so the end
        offset read here (the last stable offset) covers everything it committed.
        """
        started = time.monotonic()
        tps = [TopicPartition(self._topic, p) for p in sorted(set(partitions))]
        entries: dict[TopicPartition, dict[str, bytes]] = {tp: {} for tp in tps}
        consumer = self._consumer
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        n_records = 0
        while pending:
            fetched = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, messages in fetched.items():
                book = entries[tp]
                for message in messages:
                    if message.key is None:
                        raise AgentError(f"{tp}: state record without a key at {message.offset}")
                    key = message.key.decode()
                    if message.value is None:
                        book.pop(key, None)
                    else:
                        book[key] = message.value
                n_records += len(messages)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        consumer.assign([])
        log.info(
            "read state of partitions %s: %d records in %.2f s",
            [tp.partition for tp in tps],
            n_records,
            time.monotonic() - started,
        )
        return {tp.partition: RecoveredState(book) for tp, book in entries.items()}
