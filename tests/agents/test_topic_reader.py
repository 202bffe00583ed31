"""The topic reader (the gateway's and the demo's) on the real broker: where it starts
reading each topic.

A consumer without a group resets a new partition to its default strategy in the
background. When the broker answers that reset late (a loaded broker does), the answer
must not move a partition the reader has already placed: the signals topic is read
from its beginning whatever the timing. The delay is injected into aiokafka's offset
request (the version CI tests is pinned); the broker, topics and records are real.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import orjson
import pytest
from aiokafka.consumer.fetcher import Fetcher

from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.kafka.topics import Topics
from arbstream.agents.topic_reader import TopicReader
from arbstream.streams.market_view import TopicRecord
from helpers.kafka import create_topic, produce, scaled, until

#: ``OffsetResetStrategy.LATEST`` in a ListOffsets request.
LATEST = -1
SIGNALS_PER_PARTITION = 5


def _signal(n: int) -> bytes:
    return orjson.dumps(
        {"type": "signal", "kind": "arb", "event": "open", "seq": n, "ts": 1_700_000_000_000}
    )


async def _read_signals(bootstrap: str, topics: Topics, partitions: int) -> list[TopicRecord]:
    for name in (topics.spreads, topics.signals, topics.basis, topics.ticks):
        await create_topic(bootstrap, name, partitions, {})
    records = [
        (f"XAG|arb|K{p}".encode(), _signal(n), p)
        for p in range(partitions)
        for n in range(SIGNALS_PER_PARTITION)
    ]
    await produce(bootstrap, topics.signals, records, transactional_id=f"tx-{uuid.uuid4()}")
    got: list[TopicRecord] = []
    reader = TopicReader(KafkaClients(bootstrap), topics, got.append, lookback_s=60)
    await reader.start()
    task = asyncio.create_task(reader.run())
    try:
        await until(lambda: reader.caught_up, scaled(30), "the reader caught up")
        await until(lambda: len(got) >= len(records), scaled(10), "every signal read")
    finally:
        task.cancel()
        await reader.stop()
    return got


def test_a_late_default_reset_does_not_move_the_signals_off_their_beginning(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Fetcher._proc_offset_request

    async def late_latest(self: Fetcher, node_id: int, topic_data: Any) -> Any:
        strategies = {s for parts in topic_data.values() for _p, s in parts}
        # the consumer's own reset of a new partition (not the reader's end_offsets): the
        # broker answers "latest" after the reader has placed the partition
        if LATEST in strategies and sys._getframe(1).f_code.co_name == "_update_fetch_positions":
            await asyncio.sleep(2.0)
        return await original(self, node_id, topic_data)

    monkeypatch.setattr(Fetcher, "_proc_offset_request", late_latest)
    topics = Topics(f"tr{uuid.uuid4().hex[:8]}")
    got = asyncio.run(_read_signals(kafka_bootstrap, topics, partitions=3))
    by_key: dict[str | None, list[int]] = {}
    for entry in got:
        assert entry.topic == topics.signals
        by_key.setdefault(entry.key, []).append(entry.record["seq"])
    assert by_key == {f"XAG|arb|K{p}": list(range(SIGNALS_PER_PARTITION)) for p in range(3)}


def test_from_the_ends_it_reads_only_what_comes_after_its_start(kafka_bootstrap: str) -> None:
    """The demo's reader: every partition starts at its end as of ``start``; what is
    written after is read, up to the ends at ``read_to_ends``; what is no JSON object is
    counted as skipped, never handed on."""
    topics = Topics(f"tr{uuid.uuid4().hex[:8]}")

    async def scenario() -> tuple[list[TopicRecord], int, bool]:
        for name in (topics.spreads, topics.signals, topics.basis, topics.ticks):
            await create_topic(kafka_bootstrap, name, 2, {})
        before = [(b"XAG|arb|K0", _signal(n), 0) for n in range(3)]
        await produce(kafka_bootstrap, topics.signals, before, transactional_id="tx-before")
        got: list[TopicRecord] = []
        reader = TopicReader(KafkaClients(kafka_bootstrap), topics, got.append, lookback_s=None)
        await reader.start()
        try:
            assert reader.caught_up  # nothing before the ends to catch up on
            after = [(b"XAG|arb|K1", _signal(10 + n), 1) for n in range(4)]
            after += [(b"XAG|arb|K1", b"not json", 1), (b"XAG|arb|K1", b"[1, 2]", 1)]
            await produce(kafka_bootstrap, topics.signals, after, transactional_id="tx-after")
            done = await reader.read_to_ends(scaled(30))
        finally:
            await reader.stop()
        return got, reader.skipped, done

    got, skipped, done = asyncio.run(scenario())
    assert done
    assert [(r.key, r.record["seq"]) for r in got] == [("XAG|arb|K1", 10 + n) for n in range(4)]
    assert skipped == 2
