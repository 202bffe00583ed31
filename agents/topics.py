"""The topics of one deployment (contracts.md §2, §5) and their creation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from agents.errors import AgentError
from streams.config import Config

#: The ticks topic takes records up to 16 MiB (Kafka's default is 1 MiB): whatever a
#: producer manages to write there, the worker must see, to reject it into the dlq.
TICKS_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
TICKS_TOPIC_CONFIG = {"max.message.bytes": str(TICKS_MAX_MESSAGE_BYTES)}


@dataclass(frozen=True)
class Topics:
    """Topic names for a ``topic_prefix``."""

    prefix: str

    @property
    def ticks(self) -> str:
        return f"{self.prefix}.ticks"

    @property
    def fx(self) -> str:
        return f"{self.prefix}.fx"

    @property
    def spreads(self) -> str:
        return f"{self.prefix}.spreads"

    @property
    def signals(self) -> str:
        return f"{self.prefix}.signals"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    def all(self) -> tuple[str, ...]:
        return (self.ticks, self.fx, self.spreads, self.signals, self.dlq)


async def ensure_topics(bootstrap: str, config: Config) -> Topics:
    """Create the deployment's missing topics with the config's partitions and replication.

    Existing topics are left as they are (their partition count is the operator's).
    """
    topics = Topics(config.topic_prefix)
    async with _admin(bootstrap) as admin:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                config.kafka.partitions,
                config.kafka.replication,
                topic_configs=TICKS_TOPIC_CONFIG if name == topics.ticks else {},
            )
            for name in topics.all()
            if name not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            for error in response.to_object()["topic_errors"]:
                # 36: another process created it between our list and our create
                if error["error_code"] not in (0, TopicAlreadyExistsError.errno):
                    raise AgentError(f"cannot create topic {error['topic']!r}: {error}")
    return topics


async def partition_counts(bootstrap: str, names: list[str]) -> dict[str, int]:
    """The partition count of each named topic (which must exist)."""
    async with _admin(bootstrap) as admin:
        described = await admin.describe_topics(names)
    counts = {}
    for topic in described:
        if topic["error_code"] != 0 or not topic["partitions"]:
            raise AgentError(f"cannot describe topic {topic['topic']!r}: {topic}")
        counts[topic["topic"]] = len(topic["partitions"])
    return counts


@asynccontextmanager
async def _admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()
