"""The gateway's reader of the output topics and the ticks topic.

One consumer without a group (every gateway reads everything; nothing is committed),
``isolation_level=read_committed``, so a subscriber sees exactly what a Kafka
subscriber of the output topics sees. Where it starts, per partition:

* ``signals`` from the beginning: a signal may have been open for days, and the topic
  carries only opens, updates and closes;
* ``spreads``, ``basis`` and ``ticks`` from ``lookback_s`` ago (by the records' Kafka
  timestamps), enough for the latest spread per pair and quote per venue while a
  market is live; a venue closed for longer shows no quote until it quotes again.

``caught_up`` turns true once every partition has been read to the end it had when the
reader started: the snapshot a new subscriber receives is then the topics' state, not
a partial one (``/readyz``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from agents.errors import AgentError
from agents.kafka.access import require_rights
from agents.kafka.clients import KafkaClients
from agents.kafka.probe import close_quietly
from agents.kafka.roles import gateway_rights
from agents.kafka.topics import TICKS_MAX_MESSAGE_BYTES, Topics, existing_topics, partition_counts
from gateway.errors import GatewayError
from gateway.view import Entry
from streams import validation

log = logging.getLogger(__name__)

#: How long a fetch parked at the broker waits for records when there are none. Committed
#: records end the wait at once (benchmarks/gateway_bench.py, 20 clients at 200 records/s:
#: p50/p99 2.8/5.9 ms at 100 against 2.6/5.3 ms at 10), so a longer wait only saves the
#: idle gateway and broker nine fetches in ten.
FETCH_WAIT_MS = 100
#: Records taken from Kafka at a time, before the clients' writers get a turn: every
#: client queue must hold a few such bursts (gateway/settings.py bounds the queue size).
READ_BATCH = 500
#: Waits between looks for the topics when they do not exist yet.
TOPICS_RETRY_S = 2.0


class TopicReader:
    """Reads the committed records and hands each to ``on_entry`` in topic order."""

    def __init__(
        self,
        kafka: KafkaClients,
        topics: Topics,
        venues: frozenset[str],
        on_entry: Callable[[Entry], None],
        lookback_s: float,
        on_caught_up: Callable[[], None] = lambda: None,
    ) -> None:
        self._kafka = kafka
        self._topics = topics
        self._venues = venues
        self._on_entry = on_entry
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
            raise GatewayError(f"cannot reach Kafka at {self._kafka}: {exc}") from exc
        self._consumer = consumer
        partitions = await self._partitions()
        consumer.assign(partitions)
        await self._position(consumer, partitions)
        self.assigned = True

    async def _partitions(self) -> list[TopicPartition]:
        """Every partition of the four topics, once they all exist (and the gateway may
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
            log.warning("gateway: waiting for the topics (start the worker): %s", problem)
            await asyncio.sleep(TOPICS_RETRY_S)

    async def _position(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        """Place every partition at an explicit offset. (Not ``seek_to_beginning``: that
        asks for a reset, and the consumer's own reset of the new partition, if the broker
        answers it later, is applied in its place: under load, with the default "latest",
        the signals topic was read from its end.)"""
        since_ms = int((time.time() - self._lookback_s) * 1000)
        ends = await consumer.end_offsets(partitions)
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
        log.info("gateway: reading %d committed records to catch up", total)
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
            log.info("gateway: caught up (%d records read)", self.records)
            self._on_caught_up()

    async def run(self) -> None:
        """Read until cancelled."""
        consumer = self._consumer
        if consumer is None:
            raise GatewayError("TopicReader.run before start")
        ticks = self._topics.ticks
        on_entry = self._on_entry
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=READ_BATCH)
            for tp, messages in batches.items():
                for m in messages:
                    try:
                        entry = self._entry(tp.topic, m.key, m.value, ticks)
                        if entry is not None:
                            on_entry(entry)
                    except Exception:  # one odd record must not stop the gateway
                        log.exception("gateway: skipped %s offset %d", tp, m.offset)
                        entry = None
                    if entry is None:
                        self.skipped += 1
                    else:
                        self.records += 1
            if not self.caught_up:
                await self._check_caught_up(consumer)
            await asyncio.sleep(0)

    def _entry(
        self, topic: str, key: bytes | None, value: bytes | None, ticks: str
    ) -> Entry | None:
        """The record as an entry, or None for what the gateway does not forward. The
        ticks topic is the feeds' input, anything anyone wrote: only valid quotes of
        the config's venues pass (the engine's own stateless checks first)."""
        if value is None:
            return None
        try:
            record = validation.decode(value)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        if topic == ticks and (
            record.get("type") != "quote"
            or validation.check(record)[0] is not None
            or record["venue"] not in self._venues
        ):
            return None
        try:
            name = None if key is None else key.decode()
        except UnicodeDecodeError:
            return None
        return Entry(topic, name, record, value)

    async def stop(self) -> None:
        """Close the consumer, whatever the broker does (agents.kafka.probe)."""
        if self._consumer is not None:
            await close_quietly(self._consumer)
            self._consumer = None
