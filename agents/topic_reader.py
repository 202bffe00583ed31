"""The reader of the committed output topics and the ticks topic, for a market view
(streams/market_view.py): the gateway's and the demo's.

One consumer without a group (every reader reads everything; nothing is committed),
``isolation_level=read_committed``, so a reader sees exactly what a Kafka subscriber of
the output topics sees. It hands every record that is a JSON object, as a TopicRecord,
to ``on_record`` in topic order (the view decides what it can use), and counts the rest
as ``skipped``. Where it starts, per partition, with a ``lookback_s`` (the gateway):

* ``signals`` from the beginning: a signal may have been open for days, and the topic
  carries only opens, updates and closes;
* ``spreads``, ``basis`` and ``ticks`` from ``lookback_s`` ago (by the records' Kafka
  timestamps), enough for the latest spread per pair and quote per venue while a
  market is live; a venue closed for longer shows no quote until it quotes again.

Without one (the demo, which counts what its own run publishes), every partition starts
at its end as of ``start``.

``caught_up`` turns true once every partition has been read to the end it had when the
reader started: the picture is then the topics' state, not a partial one (the gateway's
``/readyz``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from arbstream.agents.errors import AgentError
from arbstream.agents.kafka.access import require_rights
from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.kafka.probe import CLOSE_TIMEOUT_S, close_quietly
from arbstream.agents.kafka.roles import gateway_rights
from arbstream.agents.kafka.topics import (
    TICKS_MAX_MESSAGE_BYTES,
    Topics,
    existing_topics,
    partition_counts,
)
from arbstream.streams import validation
from arbstream.streams.market_view import TopicRecord

log = logging.getLogger(__name__)

#: How long a fetch parked at the broker waits for records when there are none. Committed
#: records end the wait at once, so a longer wait only saves the idle reader and broker
#: fetches (docs/performance.md, "Figures behind defaults").
FETCH_WAIT_MS = 100
#: Records taken from Kafka at a time, before the clients' writers get a turn: every
#: client queue must hold a few such bursts (gateway/settings.py bounds the queue size).
READ_BATCH = 500
#: Waits between looks for the topics when they do not exist yet.
TOPICS_RETRY_S = 2.0


class TopicReader:
    """Reads the committed records and hands each to ``on_record`` in topic order."""

    def __init__(
        self,
        kafka: KafkaClients,
        topics: Topics,
        on_record: Callable[[TopicRecord], None],
        lookback_s: float | None,
        on_caught_up: Callable[[], None] = lambda: None,
    ) -> None:
        """``lookback_s``: how far back to start (None: at the ends; see the module)."""
        self._kafka = kafka
        self._topics = topics
        self._on_record = on_record
        self._on_caught_up = on_caught_up
        self._lookback_s = lookback_s
        self._consumer: AIOKafkaConsumer | None = None
        self._targets: dict[TopicPartition, int] = {}
        self.assigned = False
        self.caught_up = False
        self.records = 0
        self.skipped = 0

    @property
    def output_topics(self) -> tuple[str, ...]:
        t = self._topics
        return (t.spreads, t.signals, t.basis, t.ticks)

    async def start(self) -> None:
        consumer = self._kafka.consumer(
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            # a position retention has deleted under the reader: the next record there is
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_WAIT_MS,
            max_partition_fetch_bytes=TICKS_MAX_MESSAGE_BYTES,
            fetch_max_bytes=2 * TICKS_MAX_MESSAGE_BYTES,
        )
        try:
            await consumer.start()
        except KafkaError as exc:
            await consumer.stop()
            raise AgentError(f"cannot reach Kafka at {self._kafka}: {exc}") from exc
        self._consumer = consumer
        partitions = await self._partitions()
        consumer.assign(partitions)
        await self._position(consumer, partitions)
        self.assigned = True

    async def _partitions(self) -> list[TopicPartition]:
        """Every partition of the four topics, once they all exist (and the reader may
        read them: a right it lacks stops it, KafkaRefusedError). Existence is asked
        with a list of every topic: a metadata request naming a missing topic would let
        a broker with ``auto.create.topics.enable`` create it with the wrong settings."""
        wanted = list(self.output_topics)
        while True:
            try:
                # (first: the topics the gateway may not describe look missing)
                await require_rights(self._kafka, gateway_rights(self._topics))
                missing = sorted(set(wanted) - await existing_topics(self._kafka))
                if not missing:
                    counts = await partition_counts(self._kafka, wanted)
                    return [TopicPartition(t, p) for t in wanted for p in range(counts[t])]
                problem = f"no topics {', '.join(missing)} yet"
            except (AgentError, KafkaError, OSError) as exc:
                problem = str(exc)
            log.warning("reader: waiting for the topics (start the worker): %s", problem)
            await asyncio.sleep(TOPICS_RETRY_S)

    async def _position(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        """Place every partition at an explicit offset. (Not ``seek_to_beginning``: that
        asks for a reset, and the consumer's own reset of the new partition, if the broker
        answers it later, is applied in its place: under load, with the default "latest",
        the signals topic was read from its end.)"""
        ends = await consumer.end_offsets(partitions)
        if self._lookback_s is None:
            for tp in partitions:
                consumer.seek(tp, ends[tp])
            self._targets = {}
            await self._check_caught_up(consumer)
            return
        since_ms = int((time.time() - self._lookback_s) * 1000)
        signals = [tp for tp in partitions if tp.topic == self._topics.signals]
        starts = await consumer.beginning_offsets(signals)
        recent = [tp for tp in partitions if tp.topic != self._topics.signals]
        at = await consumer.offsets_for_times({tp: since_ms for tp in recent})
        for tp in partitions:
            if tp.topic == self._topics.signals:
                consumer.seek(tp, starts[tp])
            else:
                found = at.get(tp)
                consumer.seek(tp, found.offset if found is not None else ends[tp])
        self._targets = {tp: end for tp, end in ends.items() if end > 0}
        total = 0
        for tp, end in self._targets.items():
            total += max(0, end - await consumer.position(tp))
        log.info("reader: reading %d committed records to catch up", total)
        await self._check_caught_up(consumer)

    async def _check_caught_up(self, consumer: AIOKafkaConsumer) -> None:
        """Drop the partitions read to their start-time end; caught up when none is left.
        (Under read_committed a position passes a transaction's marker once read.)"""
        left = {}
        for tp, end in self._targets.items():
            if await consumer.position(tp) < end:
                left[tp] = end
        self._targets = left
        if not left and not self.caught_up:
            self.caught_up = True
            log.info("reader: caught up (%d records read)", self.records)
            self._on_caught_up()

    async def run(self) -> None:
        """Read until cancelled."""
        while True:
            await self.poll(0.2)
            await asyncio.sleep(0)

    async def poll(self, timeout_s: float) -> None:
        """Read what arrives within ``timeout_s`` (at most READ_BATCH records)."""
        consumer = self._consumer
        if consumer is None:
            raise AgentError("TopicReader.poll before start")
        on_record = self._on_record
        batches = await consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=READ_BATCH)
        for tp, messages in batches.items():
            for m in messages:
                try:
                    item = self._record(tp.topic, m.key, m.value)
                    if item is not None:
                        on_record(item)
                except Exception:  # one odd record must not stop the reader
                    log.exception("reader: skipped %s offset %d", tp, m.offset)
                    item = None
                if item is None:
                    self.skipped += 1
                else:
                    self.records += 1
        if not self.caught_up:
            await self._check_caught_up(consumer)

    async def read_to_ends(self, timeout_s: float) -> bool:
        """Read up to the ends the topics have now, within ``timeout_s``; return whether
        it got there (the demo's last read, once its processes have stopped)."""
        consumer = self._consumer
        if consumer is None:
            return False

        async def read() -> None:
            parts = list(consumer.assignment())
            ends = await consumer.end_offsets(parts)
            while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
                await self.poll(0.25)

        try:
            await asyncio.wait_for(read(), timeout_s)
        except (TimeoutError, KafkaError):
            return False
        return True

    @staticmethod
    def _record(topic: str, key: bytes | None, value: bytes | None) -> TopicRecord | None:
        """The record as a TopicRecord, or None when it is no JSON object (or its key is
        not UTF-8): nothing a view could use."""
        if value is None:
            return None
        try:
            record = validation.decode(value)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        try:
            name = None if key is None else key.decode()
        except UnicodeDecodeError:
            return None
        return TopicRecord(topic, name, record, value)

    async def stop(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Close the consumer within ``timeout_s``, whatever the broker does."""
        if self._consumer is not None:
            await close_quietly(self._consumer, timeout_s)
            self._consumer = None
