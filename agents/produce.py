"""``arbstream produce``: write a JSONL input file to Kafka, each line where
agents.routing sends it, byte for byte. Sends are not awaited one by one: delivery
futures are collected and checked in batches, and every one is checked before the
command reports success.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from arbstream.agents.errors import AgentError
from arbstream.agents.kafka.access import AUTHORIZATION_ERRORS, denial
from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.kafka.topics import Topics
from arbstream.agents.routing import destinations, route

#: Delivery futures are awaited (and errors raised) every this many sends.
CHECK_EVERY = 10_000


async def send_line(
    producer: AIOKafkaProducer,
    topics: Topics,
    partitions: list[int],
    record: bytes,
    pending: list[asyncio.Future[object]],
) -> str:
    """Send one input record as docs/records.md ("Input records") says (``partitions``:
    those of the ticks topic); append its delivery futures to ``pending`` and return its
    kind (see ``route``)."""
    kind, key = route(record)
    for topic, partition in destinations(kind, topics, partitions):
        pending.append(await producer.send(topic, record, key=key, partition=partition))
    return kind


async def produce_lines(
    lines: Iterable[bytes],
    topics: Topics,
    kafka: KafkaClients,
    progress: Callable[[int], None] | None = None,
) -> Counter[str]:
    """Send every non-blank line; return counts by kind. Raises AgentError on failure."""
    producer = kafka.producer(
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=8 * 1024 * 1024,
    )
    await producer.start()
    counts: Counter[str] = Counter()
    pending: list[asyncio.Future[object]] = []
    try:
        partitions = sorted(await producer.partitions_for(topics.ticks))
        if not partitions:
            raise AgentError(f"topic {topics.ticks!r} has no partitions")
        for line in lines:
            if progress is not None:
                progress(len(line))
            record = line.rstrip(b"\r\n")
            if not record.strip():
                continue
            counts[await send_line(producer, topics, partitions, record, pending)] += 1
            if len(pending) >= CHECK_EVERY:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    except AUTHORIZATION_ERRORS as exc:  # a right lost since the start's check
        raise AgentError(str(denial(exc, kafka, "Write"))) from exc
    except (KafkaError, OSError, TimeoutError) as exc:  # delivery or metadata: stop, say why
        raise AgentError(f"producing to {kafka} failed: {exc!r}") from exc
    finally:
        await producer.stop()
    return counts
