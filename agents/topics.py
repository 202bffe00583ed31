"""The topics of one deployment (contracts.md §2, §5) and their creation."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from agents.errors import AgentError
from streams.config import Config


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
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, config.kafka.partitions, config.kafka.replication)
            for name in topics.all()
            if name not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            for error in response.to_object()["topic_errors"]:
                # 36: another process created it between our list and our create
                if error["error_code"] not in (0, TopicAlreadyExistsError.errno):
                    raise AgentError(f"cannot create topic {error['topic']!r}: {error}")
    finally:
        await admin.close()
    return topics
