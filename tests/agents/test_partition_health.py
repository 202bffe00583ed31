"""The partition health a process serves (agents/kafka/health.py): offline and
under-replicated partitions per topic, counted from metadata answers as
``describe_topics`` gives them (the failover tests see it on a real cluster)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.kafka.health import PartitionHealth


def partition(leader: int, replicas: list[int], isr: list[int]) -> dict[str, Any]:
    return {"error_code": 0, "partition": 0, "leader": leader, "replicas": replicas, "isr": isr}


def topic(name: str, *partitions: dict[str, Any], error: int = 0) -> dict[str, Any]:
    return {
        "error_code": error,
        "topic": name,
        "is_internal": False,
        "partitions": list(partitions),
    }


def test_counts_offline_and_under_replicated_partitions(caplog: pytest.LogCaptureFixture) -> None:
    health = PartitionHealth(KafkaClients("127.0.0.1:1"), ["a.ticks", "a.signals"])
    registry = CollectorRegistry()
    registry.register(health)
    assert b"arbstream_kafka" not in generate_latest(registry)  # nothing known yet
    caplog.set_level(logging.INFO, "arbstream.agents.kafka.health")
    health.update(
        [
            topic(
                "a.ticks",
                partition(1, [1, 2, 3], [1, 2, 3]),
                partition(2, [1, 2, 3], [2, 3]),  # one replica behind
                partition(-1, [1, 2, 3], [1]),  # no leader
            ),
            topic("a.signals", partition(3, [1, 2, 3], [1, 2, 3])),
            topic("other", partition(-1, [1], [])),  # not the process's topic
        ]
    )
    text = generate_latest(registry).decode()
    assert 'arbstream_kafka_offline_partitions{topic="a.ticks"} 1.0' in text
    assert 'arbstream_kafka_under_replicated_partitions{topic="a.ticks"} 2.0' in text
    assert 'arbstream_kafka_offline_partitions{topic="a.signals"} 0.0' in text
    assert 'arbstream_kafka_under_replicated_partitions{topic="a.signals"} 0.0' in text
    assert "other" not in text
    assert "offline {'a.ticks': 1}, under-replicated {'a.ticks': 2}" in caplog.text
    # in sync again: said once, not again while nothing changes
    caplog.clear()
    healthy = [topic("a.ticks", partition(1, [1, 2, 3], [1, 2, 3])), topic("a.signals")]
    health.update(healthy)
    health.update(healthy)
    assert caplog.text.count("every partition") == 1
    assert 'arbstream_kafka_under_replicated_partitions{topic="a.ticks"} 0.0' in (
        generate_latest(registry).decode()
    )
