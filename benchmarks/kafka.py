"""The broker the benchmarks measure on: ``KAFKA_BOOTSTRAP`` (``make bench`` starts
one), reached with the process's ``ARBSTREAM_KAFKA_*`` security settings, so that a
benchmark runs against a secured cluster as the product does (docs/config.md)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.kafka.security import kafka_security
from arbstream.agents.kafka.topics import Topics, ensure_topics
from arbstream.agents.settings import Deployment


def bench_kafka(bootstrap: str) -> KafkaClients:
    """The clients of ``bootstrap`` with this process's security settings."""
    return KafkaClients(bootstrap, kafka_security())


def bench_bootstrap() -> str | None:
    """``KAFKA_BOOTSTRAP``, or None when it is not set."""
    return os.environ.get("KAFKA_BOOTSTRAP") or None


async def wait_for_leaders(admin: Any, partitions: dict[str, int], timeout_s: float = 30.0) -> None:
    """Wait until the metadata shows every partition of each topic (``{name: count}``)
    with a leader: a client started before that can miss a topic it subscribes to
    (librdkafka then looks again only after ``topic.metadata.refresh.interval.ms``, 5
    minutes). aiokafka may still log NotLeaderForPartition once for a brand-new
    partition's first offset lookup, and retries it."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = await admin.describe_topics(list(partitions))
        ready = {
            topic["topic"]
            for topic in described
            if topic["error_code"] == 0
            and len(topic["partitions"]) == partitions.get(topic["topic"])
            and all(p["leader"] >= 0 for p in topic["partitions"])
        }
        if ready == set(partitions):
            return
        if time.monotonic() > deadline:
            missing = sorted(set(partitions) - ready)
            raise RuntimeError(f"topics without a leader after {timeout_s:.0f} s: {missing}")
        await asyncio.sleep(0.05)


async def ensure_led_topics(bootstrap: str, config: Deployment) -> Topics:
    """The deployment's topics, created where missing and each partition with a leader,
    so that the first sends to them are not refused (aiokafka would log
    NotLeaderForPartition and retry, a dozen lines a run)."""
    kafka = bench_kafka(bootstrap)
    topics = await ensure_topics(kafka, config)
    admin = kafka.admin()
    await admin.start()
    try:
        await wait_for_leaders(admin, dict.fromkeys(topics.all(), config.kafka.partitions))
    finally:
        await admin.close()
    return topics
