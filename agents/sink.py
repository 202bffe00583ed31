"""The feed process's way into Kafka, surviving a broker that is away (docs/records.md).

The feeds' connection loops call ``put`` synchronously: a record is encoded once and
appended to a bounded buffer, so a feed never waits on Kafka and keeps its WebSockets
open whatever the broker does. One sender task drains the buffer in chunks, each record
where agents.routing sends it.
A chunk is built into one record batch per partition (no await per record) on an
idempotent acks=all producer, and the sender waits for the chunk's delivery before
taking the next, which keeps the order of the ticks partition the order of arrival.

If Kafka is unreachable, or a chunk is not acknowledged within the delivery timeout, the
chunk goes back to the front of the buffer and the producer is rebuilt after a backoff.
While the sink waits on Kafka it asks every second whether the broker's port still
answers (agents.kafka.probe): a broker that has gone is noticed within about two seconds, the
producer is closed at once (aiokafka's own retries would spin), and a new one is opened
only once the port answers again, after a capped, jittered backoff. While that lasts the
buffer holds at most ``buffer_max_records``; beyond, the oldest records are dropped and
counted, because fresh quotes are worth more than old ones. A chunk that timed out may
in fact have landed, so across such an outage delivery is at-least-once: the worker
applies a repeated quote again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from arbstream.agents.errors import AgentError, KafkaRefusedError
from arbstream.agents.kafka.access import AUTHORIZATION_ERRORS, denial
from arbstream.agents.kafka.aiokafka_private import abandon_producer
from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.kafka.probe import BrokerUnreachableError, broker_reachable
from arbstream.agents.kafka.topics import Topics, ensure_topics, partition_counts
from arbstream.agents.outputs import DeliveryError, KeyPlacement, OutputBatches
from arbstream.agents.routing import Kind, destinations
from arbstream.agents.settings import Deployment
from arbstream.streams.backoff import backoff
from arbstream.streams.errors import ArbstreamError

log = logging.getLogger(__name__)

#: Records per chunk: one delivery round trip each.
CHUNK_MAX = 5_000
#: While it waits on Kafka, the sink asks this often whether the broker still answers.
PROBE_EVERY_S = 1.0
#: On shutdown the buffer gets this long to drain before what is left is given up.
DRAIN_TIMEOUT_S = 10.0

#: One input record waiting in the buffer: (kind, key, value).
Pending = tuple[Kind, bytes, bytes]


@dataclass(slots=True)
class SinkStats:
    sent: int = 0  # records acknowledged by Kafka (an fx record counts once)
    dropped: int = 0  # oldest records dropped from a full buffer
    send_errors: int = 0  # failed chunks (each retried)
    connected: bool = False  # a producer is up and the topics are known


class RecordBuffer:
    """A FIFO of encoded records that drops its oldest when full, counting them."""

    def __init__(self, max_records: int, stats: SinkStats) -> None:
        self._entries: deque[Pending] = deque()
        self._max = max_records
        self._stats = stats
        self.ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def capacity(self) -> int:
        return self._max

    def put(self, entry: Pending) -> None:
        self._entries.append(entry)
        self._trim()
        self.ready.set()

    def take(self, n: int) -> list[Pending]:
        entries = self._entries
        chunk = [entries.popleft() for _ in range(min(n, len(entries)))]
        if not entries:
            self.ready.clear()
        return chunk

    def put_back(self, chunk: list[Pending]) -> None:
        """Return an undelivered chunk to the front, in its order."""
        self._entries.extendleft(reversed(chunk))
        self._trim()
        if self._entries:
            self.ready.set()

    def _trim(self) -> None:
        over = len(self._entries) - self._max
        for _ in range(over):
            self._entries.popleft()
        if over > 0:
            self._stats.dropped += over


class KafkaSink:
    """The feeds' way into Kafka: ``put`` from any feed, ``run`` once per process."""

    def __init__(
        self,
        config: Deployment,
        kafka: KafkaClients,
        *,
        retry_max_s: float = 3.0,
        drain_timeout_s: float = DRAIN_TIMEOUT_S,
    ) -> None:
        self._config = config
        self._kafka = kafka
        self._bootstrap = kafka.bootstrap
        self._drain_timeout_s = drain_timeout_s
        self._settings = config.producer
        self._retry_max_s = retry_max_s
        self.stats = SinkStats()
        self.buffer = RecordBuffer(self._settings.buffer_max_records, self.stats)

    def put(self, record: dict[str, Any]) -> None:
        """Queue one record (a connection loop's sink); never blocks."""
        # orjson's bytes keep ~4 KiB of spare capacity each; a copy holds only the record,
        # which matters for a full buffer (docs/performance.md, "Figures behind defaults").
        value = bytes(memoryview(orjson.dumps(record)))
        if record.get("type") == "fx":
            self.buffer.put(("fx", str(record["pair"]).encode(), value))
        else:
            self.buffer.put(("quote", str(record["instrument"]).encode(), value))

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop``, then drain what is buffered, for at most the drain
        timeout from the stop, whatever state the broker is in."""
        delays = backoff(self._retry_max_s)
        deadline: float | None = None
        while True:
            deliver = asyncio.create_task(self._deliver(stop))
            try:
                if deadline is None:
                    stopped = asyncio.ensure_future(stop.wait())
                    await asyncio.wait({deliver, stopped}, return_when=asyncio.FIRST_COMPLETED)
                    stopped.cancel()
                if not deliver.done():  # stopped while delivering (or while Kafka is away)
                    deadline = deadline or time.monotonic() + self._drain_timeout_s
                    await asyncio.wait_for(deliver, max(0.1, deadline - time.monotonic()))
                deliver.result()
                return  # stopped and drained
            except KafkaRefusedError:
                self.stats.connected = False
                raise
            except AUTHORIZATION_ERRORS as exc:
                raise self._refused(exc) from exc
            except DeliveryError as exc:
                if isinstance(exc.cause, AUTHORIZATION_ERRORS):
                    raise self._refused(exc.cause, exc.topic) from exc
                self._unavailable(exc)
            except (KafkaError, OSError, TimeoutError, ArbstreamError) as exc:
                self._unavailable(exc)
            if stop.is_set():
                deadline = deadline or time.monotonic() + self._drain_timeout_s
                if not self.buffer or time.monotonic() >= deadline:
                    break
                if not await broker_reachable(self._bootstrap):
                    log.error("the broker does not answer: giving up the drain")
                    break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), next(delays))  # or until stopped
        if self.buffer:
            log.error("shutting down with %d undelivered records", len(self.buffer))

    def _unavailable(self, exc: BaseException) -> None:
        self.stats.send_errors += 1
        self.stats.connected = False
        log.warning(
            "Kafka at %s unavailable (%s); %d records buffered, %d dropped so far",
            self._bootstrap,
            _why(exc),
            len(self.buffer),
            self.stats.dropped,
        )

    def _refused(self, exc: BaseException, topic: str | None = None) -> AgentError:
        """Kafka denies the feed a right (an ACL missing or removed): retrying cannot
        help, so the feed process stops, saying which; what is buffered is lost with it
        (the feeds can be restarted once the right is granted)."""
        self.stats.connected = False
        why = denial(exc, self._kafka, "Write", topic) or repr(exc)
        return AgentError(f"{why}; {len(self.buffer)} buffered records not delivered")

    async def _deliver(self, stop: asyncio.Event) -> None:
        """One producer's life: connect, then send chunks until stopped and drained."""
        s = self._settings
        producer = self._kafka.producer(
            acks="all",
            enable_idempotence=True,
            linger_ms=s.linger_ms,
            compression_type=None if s.compression == "none" else s.compression,
            max_batch_size=256 * 1024,
            request_timeout_ms=int(s.delivery_timeout_s * 1000),
        )
        try:
            if not await broker_reachable(self._bootstrap):
                raise BrokerUnreachableError("no broker answers")
            await asyncio.wait_for(producer.start(), s.delivery_timeout_s)
            topics = await asyncio.wait_for(
                ensure_topics(self._kafka, self._config), s.delivery_timeout_s
            )
            counts = await asyncio.wait_for(
                partition_counts(self._kafka, [topics.ticks, topics.fx]), s.delivery_timeout_s
            )
            self.stats.connected = True
            log.info("producing to %s (%d ticks partitions)", self._bootstrap, counts[topics.ticks])
            placement = KeyPlacement(counts)
            while True:
                if not self.buffer:
                    if stop.is_set():
                        return
                    await _first(self.buffer.ready.wait(), stop.wait(), self._broker_lost())
                    continue
                chunk = self.buffer.take(CHUNK_MAX)
                try:
                    # (the send itself may wait on metadata, so the probe covers it too)
                    await _first(
                        self._send(producer, topics, counts, placement, chunk),
                        self._broker_lost(),
                    )
                except BaseException:
                    self.buffer.put_back(chunk)
                    raise
                self.stats.sent += len(chunk)
        except BaseException:
            self.stats.connected = False
            # Its unacknowledged chunk is back in the buffer and goes out again on the next
            # producer; a producer left behind would deliver its batches once the broker
            # is back, and each of those records would arrive twice.
            await abandon_producer(producer)
            raise
        finally:
            self.stats.connected = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5)

    async def _send(
        self,
        producer: AIOKafkaProducer,
        topics: Topics,
        counts: dict[str, int],
        placement: KeyPlacement,
        chunk: list[Pending],
    ) -> None:
        batches = OutputBatches(producer, placement)
        routes = {
            kind: destinations(kind, topics, range(counts[topics.ticks]))
            for kind in ("quote", "fx")
        }
        for kind, key, value in chunk:
            for topic, partition in routes[kind]:
                if partition is None:
                    batches.keyed(topic, key, value)
                else:
                    batches.to(topic, partition, key, value)
        await batches.send()
        await asyncio.wait_for(batches.delivered(), self._settings.delivery_timeout_s)

    async def _broker_lost(self) -> None:
        """Return never while the broker answers; raise BrokerUnreachableError within about
        ``PROBE_EVERY_S`` once it does not. While the sink waits on Kafka (an idle buffer,
        or a chunk's acknowledgement), this is what notices that the broker has gone, so
        the producer is closed at once instead of retrying (and logging) in a loop, and
        the connected gauge drops within seconds rather than after the delivery timeout."""
        while True:
            await asyncio.sleep(PROBE_EVERY_S)
            if not await broker_reachable(self._bootstrap):
                raise BrokerUnreachableError("the broker stopped answering")


async def _first(*waits: Any) -> None:
    """Wait until the first of several awaitables finishes (raising what it raised);
    cancel the rest."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
