"""agents/group_offset.py on a real broker: the group's offset is committed in the
background, and a commit abandoned mid-request leaves no task behind (aiokafka's own
``commit`` leaves its shielded request, whose error asyncio would log as never
retrieved: a traceback in the worker's log when a coordinator dies)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError

from arbstream.agents.group_offset import SETTLE_TIMEOUT_S, GroupOffset
from arbstream.agents.kafka.aiokafka_private import commit_once
from helpers.kafka import group_offsets, scaled, until

pytestmark = pytest.mark.kafka


@asynccontextmanager
async def _member(bootstrap: str, topic: str, group: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer of ``group`` that has been assigned ``topic``'s one partition."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await until(lambda: bool(consumer.assignment()), scaled(30), "an assignment")
        yield consumer
    finally:
        await consumer.stop()


def _commit_requests() -> list[asyncio.Task[object]]:
    """aiokafka's shielded OffsetCommit request tasks still running."""
    return [
        task
        for task in asyncio.all_tasks()
        if "_do_commit_offsets" in getattr(task.get_coro(), "__qualname__", "")
    ]


async def _steps_until(condition: Callable[[], bool], steps: int = 50) -> None:
    """Let the other tasks run, one loop step at a time (a request to a local broker
    is answered within a few milliseconds: a poll would miss it in flight)."""
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0)


Scenario = Callable[[AIOKafkaConsumer, TopicPartition, str], Awaitable[None]]


@pytest.fixture
def in_a_group(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> Callable[[Scenario], None]:
    def run(scenario: Scenario) -> None:
        topic = topic_factory(partitions=1)
        group = f"g-{uuid.uuid4().hex}"

        async def main() -> None:
            async with _member(kafka_bootstrap, topic, group) as consumer:
                await scenario(consumer, TopicPartition(topic, 0), group)

        asyncio.run(main())

    return run


def test_the_latest_offset_wanted_is_committed(
    in_a_group: Callable[[Scenario], None], kafka_bootstrap: str
) -> None:
    async def scenario(consumer: AIOKafkaConsumer, tp: TopicPartition, group: str) -> None:
        committer = GroupOffset(consumer, tp)
        for offset in (3, 7, 12):
            committer.want(offset)
        await committer.settled(SETTLE_TIMEOUT_S)
        assert await group_offsets(kafka_bootstrap, group, tp.topic) == {0: 12}

    in_a_group(scenario)


def test_a_commit_abandoned_mid_request_leaves_no_task_behind(
    in_a_group: Callable[[Scenario], None],
) -> None:
    async def scenario(consumer: AIOKafkaConsumer, tp: TopicPartition, group: str) -> None:
        # The premise: aiokafka's own commit, cancelled mid-request, leaves its request.
        caller = asyncio.create_task(consumer.commit({tp: 1}))
        await _steps_until(lambda: bool(_commit_requests()))
        caller.cancel()
        await asyncio.sleep(0)
        assert _commit_requests(), "aiokafka's commit no longer leaves its request behind"
        await asyncio.gather(*_commit_requests(), return_exceptions=True)

        # Ours makes no task of its own (a guard against going back to commit()).
        committer = GroupOffset(consumer, tp)
        committer.want(2)
        await _steps_until(lambda: False, steps=5)  # the committer's request on its way
        committer.abandon()
        await asyncio.sleep(0)
        assert not _commit_requests()

    in_a_group(scenario)


def test_a_partition_not_assigned_here_is_not_committed(
    in_a_group: Callable[[Scenario], None], kafka_bootstrap: str
) -> None:
    """The broker would take it and overwrite the owner's offset: the consumer's own
    ``commit`` refuses it, and so does ``commit_once``."""

    async def scenario(consumer: AIOKafkaConsumer, tp: TopicPartition, group: str) -> None:
        elsewhere = TopicPartition(f"{tp.topic}-other", 0)
        with pytest.raises(IllegalStateError, match="not assigned"):
            await commit_once(consumer, {tp: 4, elsewhere: 4})
        assert await group_offsets(kafka_bootstrap, group, tp.topic) == {}

    in_a_group(scenario)
