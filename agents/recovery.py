"""Loading a ticks partition for processing: a new producer (exactly once, a
transactional one, which fences the partition's previous owner and settles its open
transaction; at least once, an idempotent one), the committed state read back from the
state topic, an engine rebuilt from it, and the consumer positioned at the offset stored
with it.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.kafka.probe import close_quietly
from arbstream.agents.kafka.topics import TICKS_MAX_MESSAGE_BYTES, Topics, kafka_source
from arbstream.agents.partition import Loaded
from arbstream.agents.settings import Deployment
from arbstream.agents.state_store import StateReader
from arbstream.streams.engine import Engine

log = logging.getLogger(__name__)

#: Producer batches; the broker's default max.message.bytes is 1 MiB.
PRODUCER_BATCH_BYTES = 512 * 1024


class PartitionLoader:
    """Loads the worker's partitions (see the module docstring)."""

    def __init__(
        self,
        config: Deployment,
        kafka: KafkaClients,
        consumer: AIOKafkaConsumer,
        reader: StateReader,
        *,
        transactional: bool = True,
    ) -> None:
        self.config = config
        self.transactional = transactional
        self.kafka = kafka
        self.topics = Topics(config.topic_prefix)
        self._consumer = consumer
        self._reader = reader

    async def load(self, partitions: list[int]) -> dict[int, Loaded]:
        """The committed state of ``partitions``, each with a new producer, and the
        consumer positioned at each one's stored offset.

        Each new producer's start fences every earlier producer of its partition and
        settles their transactions, so the state read afterwards is complete.
        """
        started = await asyncio.gather(
            *(self._start_producer(p) for p in partitions), return_exceptions=True
        )
        producers = {
            p: x
            for p, x in zip(partitions, started, strict=True)
            if not isinstance(x, BaseException)
        }
        out: dict[int, Loaded] = {}
        try:
            for result in started:
                if isinstance(result, BaseException):
                    raise result
            recovered = await self._reader.read(partitions)
            for p in partitions:
                state = recovered[p]
                tp = TopicPartition(self.topics.ticks, p)
                engine = Engine(self.config, kafka_source(self.topics.ticks, p))
                engine.load(state.entries)
                next_offset = state.next_offset
                if next_offset is None:
                    next_offset = await self._first_offset(tp)
                self._consumer.seek(tp, next_offset)
                out[p] = Loaded(engine, producers.pop(p), next_offset)
                log.info(
                    "partition %d: %d state entries, resuming at offset %d",
                    p,
                    len(state.entries),
                    next_offset,
                )
        finally:
            for producer in producers.values():  # those not handed over
                await close_quietly(producer)  # not handed over: nothing to keep
        return out

    async def _first_offset(self, tp: TopicPartition) -> int:
        """Where a partition without state starts: its beginning, unless the group has
        committed offsets (the state topic was deleted: outputs may repeat)."""
        committed = await self._consumer.committed(tp)
        if committed is not None:
            log.warning("%s: no state but a committed offset %d; starting there", tp, committed)
            return int(committed)
        return int((await self._reader.beginning_offsets([tp]))[tp])

    async def _start_producer(self, partition: int) -> AIOKafkaProducer:
        producer = self.kafka.producer(
            transactional_id=(
                self.topics.transactional_id(partition) if self.transactional else None
            ),
            enable_idempotence=True,
            acks="all",
            linger_ms=0,
            max_batch_size=PRODUCER_BATCH_BYTES,
            max_request_size=2 * TICKS_MAX_MESSAGE_BYTES,
        )
        await producer.start()
        return producer
