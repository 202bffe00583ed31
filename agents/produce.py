"""``arbstream produce``: write a JSONL input file to Kafka as contracts.md §2 and §8 say.

Quotes go to ``<prefix>.ticks`` keyed by instrument (so one partition sees every venue
of an instrument, in file order); fx records go to *every* partition of the ticks topic
and once to ``<prefix>.fx`` keyed by pair; anything else goes to the ticks topic without
a key, byte for byte, for the worker to reject with its offset. Sends are not awaited
one by one: delivery futures are collected and checked in batches.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from agents.errors import AgentError
from agents.topics import Topics
from streams.validation import decode

#: Delivery futures are awaited (and errors raised) every this many sends.
CHECK_EVERY = 10_000


def route(line: bytes) -> tuple[str, bytes | None]:
    """How a line travels: (``"quote"`` | ``"fx"`` | ``"other"``, key)."""
    try:
        obj = decode(line)
    except ValueError:
        return "other", None
    if type(obj) is dict:
        kind = obj.get("type")
        if kind == "quote":
            instrument = obj.get("instrument")
            if type(instrument) is str and instrument:
                return "quote", instrument.encode()
        elif kind == "fx":
            pair = obj.get("pair")
            return "fx", pair.encode() if type(pair) is str and pair else None
    return "other", None


async def send_line(
    producer: AIOKafkaProducer,
    topics: Topics,
    partitions: list[int],
    record: bytes,
    pending: list[asyncio.Future[object]],
) -> str:
    """Send one input record as §2 says (``partitions``: those of the ticks topic);
    append its delivery futures to ``pending`` and return its kind (see ``route``)."""
    kind, key = route(record)
    if kind == "fx":
        for p in partitions:
            pending.append(await producer.send(topics.ticks, record, key=key, partition=p))
        pending.append(await producer.send(topics.fx, record, key=key))
    else:
        pending.append(await producer.send(topics.ticks, record, key=key))
    return kind


async def produce_lines(
    lines: Iterable[bytes],
    topics: Topics,
    bootstrap: str,
    progress: Callable[[int], None] | None = None,
) -> Counter[str]:
    """Send every non-blank line; return counts by kind. Raises AgentError on failure."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
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
    except (KafkaError, OSError, TimeoutError) as exc:  # delivery or metadata: stop, say why
        raise AgentError(f"producing to {bootstrap} failed: {exc!r}") from exc
    finally:
        await producer.stop()
    return counts
