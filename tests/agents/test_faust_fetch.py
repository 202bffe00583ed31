"""agents/faust_fetch.py on a real broker: the fetch the Faust runtime's consumer thread
makes never drains a partition it was not asked for, and never loses what it drained
after the flow stopped (the Faust runtime's recovery hang, see the module)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from arbstream.agents.faust_fetch import fetch_guarded
from helpers.kafka import produce, scaled, until

pytestmark = pytest.mark.kafka

RECORDS_PER_PARTITION = 5


@asynccontextmanager
async def _consumer(bootstrap: str, topic: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer assigned both partitions of ``topic`` (5 records in each), at 0."""
    records = [(b"k", b"%d" % i, p) for p in (0, 1) for i in range(RECORDS_PER_PARTITION)]
    await produce(bootstrap, topic, records)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        yield consumer
    finally:
        await consumer.stop()


Scenario = Callable[[AIOKafkaConsumer], Awaitable[None]]


@pytest.fixture
def on_a_consumer(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> Callable[[Scenario], None]:
    """Runs a scenario on a consumer of a fresh two-partition topic."""

    def run(scenario: Scenario) -> None:
        topic = topic_factory(partitions=2)

        async def main() -> None:
            async with _consumer(kafka_bootstrap, topic) as consumer:
                await scenario(consumer)

        asyncio.run(main())

    return run


def _fetch(consumer: AIOKafkaConsumer, timeout_s: float) -> Any:
    async def fetch(partitions: Any) -> Any:
        return await consumer._fetcher.fetched_records(partitions, timeout=timeout_s)

    return fetch


async def _positions(consumer: AIOKafkaConsumer) -> dict[int, int]:
    return {tp.partition: await consumer.position(tp) for tp in consumer.assignment()}


def test_aiokafka_reads_an_empty_partition_set_as_every_partition(
    on_a_consumer: Callable[[Scenario], None],
) -> None:
    """The premise of the mend: if this fails, the pinned aiokafka changed and the mend
    may no longer be needed."""

    async def scenario(consumer: AIOKafkaConsumer) -> None:
        records = await _fetch(consumer, scaled(10))(set())
        assert records, "nothing asked for, yet aiokafka's fetch drains what it has"

    on_a_consumer(scenario)


def test_an_empty_active_set_fetches_nothing_and_moves_no_position(
    on_a_consumer: Callable[[Scenario], None],
) -> None:
    async def scenario(consumer: AIOKafkaConsumer) -> None:
        # Once the fetcher holds both partitions' records, an unmended call would take them.
        fetched = consumer._fetcher._records
        await until(lambda: len(fetched) == 2, scaled(10), "the fetcher holding records")
        records = await fetch_guarded(_fetch(consumer, 0.5), consumer, set(), lambda: True)
        assert records == {}
        assert await _positions(consumer) == {0: 0, 1: 0}

    on_a_consumer(scenario)


def test_records_drained_after_the_flow_stopped_are_put_back(
    on_a_consumer: Callable[[Scenario], None],
) -> None:
    async def scenario(consumer: AIOKafkaConsumer) -> None:
        every = set(consumer.assignment())
        flow = {"active": True}
        fetch = _fetch(consumer, scaled(10))

        async def fetch_then_stop(partitions: Any) -> Any:
            records = await fetch(partitions)
            assert records, "the topic holds records: the fetch must drain some"
            flow["active"] = False  # a rebalance stopped the flow during the wait
            return records

        assert await fetch_guarded(fetch_then_stop, consumer, every, lambda: flow["active"]) == {}
        assert await _positions(consumer) == {0: 0, 1: 0}
        # Once the flow runs again, the same records come, from the first.
        got: dict[int, list[int]] = {0: [], 1: []}
        while any(len(offsets) < RECORDS_PER_PARTITION for offsets in got.values()):
            records = await fetch_guarded(fetch, consumer, every, lambda: True)
            for tp, batch in records.items():
                got[tp.partition] += [r.offset for r in batch]
        assert got == {p: list(range(RECORDS_PER_PARTITION)) for p in (0, 1)}

    on_a_consumer(scenario)
