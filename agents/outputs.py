"""The records of one transaction, built into one record batch per destination.

aiokafka's ``send`` is a coroutine per record (metadata wait, partitioner, accumulator);
for thousands of outputs per transaction that is most of the cost. Appending to a
``BatchBuilder`` per (topic, partition) and handing each full batch to ``send_batch``
costs one await per batch. Keyed records go to the partition the default (murmur2)
partitioner gives their key, as a Java or aiokafka producer would place them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnsupportedForMessageFormatError,
)
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from arbstream.agents.errors import AgentError

#: The (topic, partition) of one record batch.
BatchTarget = tuple[str, int]
#: The largest batch ``whole`` writes, before compression: the state of one batch of
#: ticks, at least once (5,000 ticks of the standard workload change 0.35-0.5 MB of it,
#: which lz4 makes about a tenth of that; smaller ones go raw, below). The state topic
#: takes 16 MiB batches (agents/kafka/topics.py); one made before takes Kafka's
#: default, 1 MiB compressed.
WHOLE_BATCH_BYTES = 16 * 1024 * 1024
#: A ``whole`` batch of at most this many bytes of keys and values goes uncompressed:
#: lz4 cost 0.36 ms of CPU for the 25 KB state of a 20-tick batch, against 0.03 ms to
#: build it raw, on the path of every batch at least once (2026-12-08); and half a MiB
#: raw fits even a state topic made before it took 16 MiB batches (1 MiB).
UNCOMPRESSED_WHOLE_BYTES = 512 * 1024


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives ``key``."""
    every = list(range(partitions))
    return int(DefaultPartitioner()(key, every, every))


class KeyPlacement:
    """The partition of each keyed record, ``key_partition`` of its topic's count,
    remembered per (topic, key): a worker or a feed sends the same keys again and again."""

    def __init__(self, partition_counts: dict[str, int]) -> None:
        self._counts = partition_counts
        self._known: dict[tuple[str, bytes], int] = {}

    def __call__(self, topic: str, key: bytes) -> int:
        partition = self._known.get((topic, key))
        if partition is None:
            partition = self._known[(topic, key)] = key_partition(key, self._counts[topic])
        return partition


class OutputBatches:
    """Collects records for one producer; ``flush`` sends them and awaits their delivery."""

    def __init__(self, producer: AIOKafkaProducer, placement: KeyPlacement) -> None:
        """``placement``: where keyed records go (kept across batches)."""
        self._producer = producer
        self._placement = placement
        self._open: dict[BatchTarget, Any] = {}
        self._full: list[tuple[BatchTarget, Any]] = []
        self._sent: list[tuple[BatchTarget, asyncio.Future[Any]]] = []

    @property
    def holding(self) -> bool:
        """Records are collected and not sent yet."""
        return bool(self._open or self._full)

    def keyed(self, topic: str, key: bytes, value: bytes) -> None:
        """A record placed by its key."""
        self.to(topic, self._placement(topic, key), key, value)

    def to(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        """A record for an explicit partition."""
        destination = (topic, partition)
        batch = self._open.get(destination)
        if batch is None:
            batch = self._open[destination] = self._producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            # Full: it goes out as it is, and a new one takes the record (a record larger
            # than a batch always fits an empty one).
            self._full.append((destination, batch))
            batch = self._open[destination] = self._producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)

    def whole(self, topic: str, partition: int, records: list[tuple[bytes, bytes | None]]) -> None:
        """``records`` in one record batch of their own, which Kafka appends whole or not
        at all: up to ``WHOLE_BATCH_BYTES``, lz4-compressed unless they are small
        (``UNCOMPRESSED_WHOLE_BYTES``), for a producer without transactions;
        WholeBatchError when they do not fit."""
        raw = sum(len(key) + len(value or b"") for key, value in records)
        small = raw <= UNCOMPRESSED_WHOLE_BYTES
        codec = DefaultRecordBatch.CODEC_NONE if small else DefaultRecordBatch.CODEC_LZ4
        batch = BatchBuilder(WHOLE_BATCH_BYTES, codec)
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise WholeBatchError(topic, partition, len(records))
        self._full.append(((topic, partition), batch))

    async def send(self) -> None:
        """Hand every batch to the producer (``delivered`` waits for the acknowledgements)."""
        batches = self._full + list(self._open.items())
        self._full = []
        self._open = {}
        send = self._producer.send_batch
        for destination, batch in batches:
            topic, p = destination
            self._sent.append((destination, await send(batch, topic, partition=p)))

    async def delivered(self) -> None:
        """Wait until Kafka has acknowledged every batch sent; raise DeliveryError, naming
        the first destination that failed, when any was refused. A transaction holding
        these records must then be aborted: aiokafka commits a transaction whose sends
        failed as if they had not."""
        sent, self._sent = self._sent, []
        results = await asyncio.gather(*(f for _, f in sent), return_exceptions=True)
        failed = {
            destination
            for (destination, _), result in zip(sent, results, strict=True)
            if isinstance(result, BaseException)
        }
        for ((topic, p), _), result in zip(sent, results, strict=True):
            if isinstance(result, BaseException):
                acknowledged = frozenset(destination for destination, _ in sent) - failed
                raise DeliveryError(topic, p, result, acknowledged) from result

    async def flush(self) -> None:
        """``send``, then ``delivered``."""
        await self.send()
        await self.delivered()


#: Errors with which Kafka refuses a record for what it is, not for the state of the
#: cluster: sending it again gives the same answer.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    PolicyViolationError,
    UnsupportedForMessageFormatError,
    CorruptRecordException,
)


class DeliveryError(AgentError):
    """Kafka did not acknowledge a record batch sent to ``topic`` partition ``partition``;
    ``acknowledged``: the destinations of the same flush whose batches all were."""

    def __init__(
        self,
        topic: str,
        partition: int,
        cause: BaseException,
        acknowledged: frozenset[BatchTarget] = frozenset(),
    ) -> None:
        super().__init__(f"{topic}[{partition}]: {type(cause).__name__}: {cause}")
        self.topic = topic
        self.partition = partition
        self.cause = cause
        self.acknowledged = acknowledged

    @property
    def permanent(self) -> bool:
        """Sending the same records again cannot succeed."""
        return isinstance(self.cause, PERMANENT_ERRORS)


class WholeBatchError(AgentError):
    """Records that must be written together do not fit one record batch."""

    def __init__(self, topic: str, partition: int, count: int) -> None:
        super().__init__(
            f"{topic}[{partition}]: {count} state entries do not fit one record batch of "
            f"{WHOLE_BATCH_BYTES >> 20} MiB; at "
            "least once writes a batch's state whole, so the worker stops (exactly once, "
            "the default, has no such limit)"
        )
