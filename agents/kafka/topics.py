"""The names of one deployment (its topics, consumer groups and transactional ids;
docs/records.md) and the creation of its topics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, TopicAuthorizationFailedError

from arbstream.agents.errors import DEPLOY_DOC, AgentError, KafkaRefusedError
from arbstream.agents.kafka.access import Rights, require_broker, require_rights
from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.settings import Deployment
from arbstream.streams.engine import Source
from arbstream.streams.errors import SetupError

#: The ticks topic takes records up to 16 MiB (Kafka's default is 1 MiB): whatever a
#: producer manages to write there, the worker must see, to reject it into the dlq.
TICKS_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
TICKS_TOPIC_CONFIG = {"max.message.bytes": str(TICKS_MAX_MESSAGE_BYTES)}
#: How long a just-created topic may stay unknown to metadata requests.
METADATA_WAIT_S = 10.0
UNKNOWN_TOPIC = 3  # UNKNOWN_TOPIC_OR_PARTITION
#: The worker's state changelog keeps the latest value of each key only, for ever (a
#: deleted entry's tombstone for a day, Kafka's default delete.retention.ms). It takes
#: record batches as large as the ticks topic's records: at least once, one batch of
#: ticks writes its whole state as one record batch (agents/partition.py).
STATE_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "max.message.bytes": str(TICKS_MAX_MESSAGE_BYTES),
}
#: The Faust runtime's tables (agents/faust_app.py), each with a changelog topic.
FAUST_TABLES = ("state", "open-signals")
#: The runtimes, and the topics of its own each keeps its state in.
RUNTIMES = ("default", "faust")


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

    def faust_table(self, table: str) -> str:
        """The changelog of the Faust runtime's table ``table`` (compacted, one partition
        per ticks partition): under the prefix, like every topic of the deployment."""
        return f"{self.prefix}.faust-{table}"

    @property
    def group(self) -> str:
        """The exactly-once workers' consumer group; also the prefix of their
        transactional ids (``transactional_id``)."""
        return f"arbstream-{self.prefix}"

    @property
    def faust_group(self) -> str:
        """The Faust runtime's app id and consumer group (never shared with the
        exactly-once workers)."""
        return f"{self.group}-faust"

    def transactional_id(self, partition: int) -> str:
        """The transactional id of ticks partition ``partition``'s producer: whoever
        owns the partition next fences the previous owner's."""
        return f"{self.group}-ticks-{partition}"

    def all(self) -> tuple[str, ...]:
        """The topics of docs/records.md (not a runtime's own state topics)."""
        return (self.ticks, self.fx, self.spreads, self.basis, self.signals, self.dlq)

    def state_topics(self, runtime: str) -> tuple[str, ...]:
        """The compacted topics a runtime keeps its state in, one partition per ticks
        partition: the worker's state, or the Faust tables' changelogs."""
        if runtime == "faust":
            return tuple(self.faust_table(table) for table in FAUST_TABLES)
        return (self.state,)


def topic_config(config: Deployment) -> dict[str, str]:
    """What every topic arbstream creates is made with: acknowledged by
    ``min_insync_replicas`` replicas (producers send with acks=all), and never led by an
    out-of-sync replica (which would drop acknowledged records)."""
    return {
        "min.insync.replicas": str(config.kafka.min_isr),
        "unclean.leader.election.enable": "false",
    }


async def ensure_topics(kafka: KafkaClients, config: Deployment) -> Topics:
    """Create the deployment's missing topics with the config's partitions and replication.

    Existing topics are left as they are (their partition count is the operator's).
    """
    topics = Topics(config.topic_prefix)
    async with _admin(kafka) as admin:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                config.kafka.partitions,
                config.kafka.replication,
                topic_configs={
                    **topic_config(config),
                    **(TICKS_TOPIC_CONFIG if name == topics.ticks else {}),
                },
            )
            for name in topics.all()
            if name not in existing
        ]
        await _create(kafka, admin, missing)
    return topics


async def ensure_state_topics(
    kafka: KafkaClients, config: Deployment, names: tuple[str, ...], n_ticks: int
) -> dict[str, int]:
    """Create the state topics ``names`` where missing, compacted, with ``n_ticks``
    partitions (the ticks topic's count); return their partition counts.

    Raises SetupError when an existing one has another partition count: the state of
    ticks partition p lives in partition p.
    """
    topics = Topics(config.topic_prefix)
    async with _admin(kafka) as admin:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name,
                n_ticks,
                config.kafka.replication,
                topic_configs={**topic_config(config), **STATE_TOPIC_CONFIG},
            )
            for name in names
            if name not in existing
        ]
        await _create(kafka, admin, new)
    counts = await partition_counts(kafka, list(names))
    for name, n in counts.items():
        if n != n_ticks:
            raise SetupError(
                f"topic {name!r} has {n} partitions but {topics.ticks!r} has "
                f"{n_ticks}; they must be equal"
            )
    return counts


async def prepare(
    kafka: KafkaClients,
    config: Deployment,
    rights: Rights | None = None,
    runtime: str | None = "default",
) -> dict[str, int]:
    """Before a process touches any data: check that the broker answers and lets this
    client in, that it grants the role's ``rights``, create the deployment's missing
    topics (and ``runtime``'s state topics; None: none), and return every topic's
    partition count. Raises SetupError (KafkaRefusedError when Kafka refuses).

    The rights are checked before the topics are made (a topic this client may not
    describe looks missing, and creating it would be refused for the wrong reason) and
    again after, for the topics just made."""
    await require_broker(kafka)
    if rights is not None:
        await require_rights(kafka, rights)
    try:
        topics = await ensure_topics(kafka, config)
        counts = await partition_counts(kafka, list(topics.all()))
        if runtime is not None:
            names = topics.state_topics(runtime)
            counts.update(await ensure_state_topics(kafka, config, names, counts[topics.ticks]))
    except KafkaError as exc:
        raise SetupError(f"Kafka at {kafka}: {exc}") from exc
    if rights is not None:
        await require_rights(kafka, rights)
    return counts


async def existing_topics(kafka: KafkaClients) -> set[str]:
    """The names of every topic the cluster has that this client may describe (asking
    for all of them creates none)."""
    async with _admin(kafka) as admin:
        return set(await admin.list_topics())


async def partition_counts(kafka: KafkaClients, names: list[str]) -> dict[str, int]:
    """The partition count of each named topic (which must exist).

    A topic created a moment ago may be unknown to the broker's metadata for a short
    while (error 3): such topics are asked again, for up to ``METADATA_WAIT_S``.
    """
    counts: dict[str, int] = {}
    deadline = time.monotonic() + METADATA_WAIT_S
    async with _admin(kafka) as admin:
        while True:
            described = await admin.describe_topics([n for n in names if n not in counts])
            unknown = []
            for topic in described:
                if topic["error_code"] == 0 and topic["partitions"]:
                    counts[topic["topic"]] = len(topic["partitions"])
                elif topic["error_code"] in (0, UNKNOWN_TOPIC) and time.monotonic() < deadline:
                    unknown.append(topic["topic"])
                elif topic["error_code"] == TopicAuthorizationFailedError.errno:
                    raise KafkaRefusedError(
                        f"Kafka at {kafka.bootstrap} denies {kafka.security.principal} "
                        f"Describe on topic {topic['topic']!r} ({DEPLOY_DOC})"
                    )
                else:
                    raise AgentError(f"cannot describe topic {topic['topic']!r}: {topic}")
            if not unknown:
                return counts
            await asyncio.sleep(0.1)


async def _create(
    kafka: KafkaClients, admin: AIOKafkaAdminClient, new_topics: list[NewTopic]
) -> None:
    """Create topics; one that another process created meanwhile is not an error."""
    if not new_topics:
        return
    response = await admin.create_topics(new_topics)
    for error in response.to_object()["topic_errors"]:
        # 36: another process created it between our list and our create
        if error["error_code"] == TopicAuthorizationFailedError.errno:
            # (a topic this client may not describe is not listed, so it may exist)
            raise KafkaRefusedError(
                f"Kafka at {kafka.bootstrap} denies {kafka.security.principal} Create on "
                f"topic {error['topic']!r}, which it cannot see: an admin creates the "
                f"topics (arbstream topics), and {DEPLOY_DOC}"
            )
        if error["error_code"] not in (0, TopicAlreadyExistsError.errno):
            raise SetupError(
                f"cannot create topic {error['topic']!r}: {error.get('error_message') or error}"
            )


@asynccontextmanager
async def _admin(kafka: KafkaClients) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = kafka.admin()
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


def kafka_source(topic: str, partition: int) -> Callable[[int], Source]:
    """Where a ticks record of ``partition`` came from, by its offset, as a rejected
    record's ``source`` shows it (docs/records.md, "rejected")."""

    def source_of(offset: int) -> Source:
        return {"topic": topic, "partition": partition, "offset": offset}

    return source_of
