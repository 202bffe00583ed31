"""Where the Kafka cluster is and how to reach it: the one factory of every Kafka client
arbstream creates, so that each carries the process's security settings
(agents/security.py) and nothing connects another way."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from arbstream.agents.kafka.security import PLAINTEXT, KafkaSecurity, kafka_security
from arbstream.agents.settings import broker_bootstrap

#: Both runtimes' consumer groups: a worker that dies without leaving the group (kill
#: -9, a lost host) keeps its partitions until this expires (Kafka's default is 45 s).
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 1_000


@dataclass(frozen=True)
class KafkaClients:
    """The bootstrap addresses and the security settings of one process."""

    bootstrap: str  # host:port[,host:port]
    security: KafkaSecurity = PLAINTEXT

    def producer(self, **options: Any) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, **self.security.aiokafka(), **options
        )

    def consumer(self, *topics: str, **options: Any) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            *topics, bootstrap_servers=self.bootstrap, **self.security.aiokafka(), **options
        )

    def admin(self, **options: Any) -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, **self.security.aiokafka(), **options
        )

    def __str__(self) -> str:
        """For logs and errors: where, and how (never a password)."""
        if self.security.protocol == "PLAINTEXT":
            return self.bootstrap
        return f"{self.bootstrap} ({self.security.describe()})"


def kafka_clients(env: Mapping[str, str] = os.environ) -> KafkaClients:
    """``ARBSTREAM_BROKER`` and the ``ARBSTREAM_KAFKA_*`` security settings; raises
    AgentError or SetupError naming the variable that cannot work."""
    return KafkaClients(broker_bootstrap(env), kafka_security(env))
