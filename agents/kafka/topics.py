"""The topics of one deployment (contracts.md §2, §5) and their creation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from agents.errors import AgentError
from agents.settings import Deployment
from streams.errors import SetupError

#: The ticks topic takes records up to 16 MiB (Kafka's default is 1 MiB): whatever a
#: producer manages to write there, the worker must see, to reject it into the dlq.
TICKS_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
TICKS_TOPIC_CONFIG = {"max.message.bytes": str(TICKS_MAX_MESSAGE_BYTES)}
#: How long a just-created topic may stay unknown to metadata requests.
METADATA_WAIT_S = 10.0
UNKNOWN_TOPIC = 3  # UNKNOWN_TOPIC_OR_PARTITION
#: The worker's state changelog keeps the latest value of each key only.
STATE_TOPIC_CONFIG = {"cleanup.policy": "compact"}


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
    def basis(self) -> str:
        return f"{self.prefix}.basis"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    @property
    def state(self) -> str:
        """The workers' state changelog: partition p holds the engine of ticks partition p."""
        return f"{self.prefix}.worker-state"

    def all(self) -> tuple[str, ...]:
        """The topics of contracts.md §2 and §5 (not the workers' internal state topic)."""
        return (self.ticks, self.fx, self.spreads, self.basis, self.signals, self.dlq)


async def ensure_topics(bootstrap: str, config: Deployment) -> Topics:
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
        await _create(admin, missing)
    return topics


async def ensure_state_topic(bootstrap: str, config: Deployment, n_ticks: int) -> int:
    """Create the workers' state topic if missing, compacted, with ``n_ticks`` partitions
    (the ticks topic's count); return its partition count.

    Raises SetupError when an existing state topic has another partition count: the
    engine of ticks partition p lives in state partition p.
    """
    topics = Topics(config.topic_prefix)
    async with _admin(bootstrap) as admin:
        if topics.state not in set(await admin.list_topics()):
            new = NewTopic(
                topics.state,
                n_ticks,
                config.kafka.replication,
                topic_configs=STATE_TOPIC_CONFIG,
            )
            await _create(admin, [new])
    n_state = (await partition_counts(bootstrap, [topics.state]))[topics.state]
    if n_state != n_ticks:
        raise SetupError(
            f"topic {topics.state!r} has {n_state} partitions but {topics.ticks!r} has "
            f"{n_ticks}; they must be equal"
        )
    return n_state


async def existing_topics(bootstrap: str) -> set[str]:
    """The names of every topic the cluster has (asking for all of them creates none)."""
    async with _admin(bootstrap) as admin:
        return set(await admin.list_topics())


async def partition_counts(bootstrap: str, names: list[str]) -> dict[str, int]:
    """The partition count of each named topic (which must exist).

    A topic created a moment ago may be unknown to the broker's metadata for a short
    while (error 3): such topics are asked again, for up to ``METADATA_WAIT_S``.
    """
    counts: dict[str, int] = {}
    deadline = time.monotonic() + METADATA_WAIT_S
    async with _admin(bootstrap) as admin:
        while True:
            described = await admin.describe_topics([n for n in names if n not in counts])
            unknown = []
            for topic in described:
                if topic["error_code"] == 0 and topic["partitions"]:
                    counts[topic["topic"]] = len(topic["partitions"])
                elif topic["error_code"] in (0, UNKNOWN_TOPIC) and time.monotonic() < deadline:
                    unknown.append(topic["topic"])
                else:
                    raise AgentError(f"cannot describe topic {topic['topic']!r}: {topic}")
            if not unknown:
                return counts
            await asyncio.sleep(0.1)


async def _create(admin: AIOKafkaAdminClient, new_topics: list[NewTopic]) -> None:
    """Create topics; one that another process created meanwhile is not an error."""
    if not new_topics:
        return
    response = await admin.create_topics(new_topics)
    for error in response.to_object()["topic_errors"]:
        # 36: another process created it between our list and our create
        if error["error_code"] not in (0, TopicAlreadyExistsError.errno):
            raise SetupError(
                f"cannot create topic {error['topic']!r}: {error.get('error_message') or error}"
            )


@asynccontextmanager
async def _admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()
