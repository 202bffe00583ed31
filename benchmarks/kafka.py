"""The broker the benchmarks measure on: ``KAFKA_BOOTSTRAP`` (``make bench`` starts
one), reached with the process's ``ARBSTREAM_KAFKA_*`` security settings, so that a
benchmark runs against a secured cluster as the product does (docs/config.md)."""

from __future__ import annotations

import os

from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.kafka.security import kafka_security


def bench_kafka(bootstrap: str) -> KafkaClients:
    """The clients of ``bootstrap`` with this process's security settings."""
    return KafkaClients(bootstrap, kafka_security())


def bench_bootstrap() -> str | None:
    """``KAFKA_BOOTSTRAP``, or None when it is not set."""
    return os.environ.get("KAFKA_BOOTSTRAP") or None
