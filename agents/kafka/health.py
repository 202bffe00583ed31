"""The cluster as a process sees it: which of its topics' partitions have no leader
(offline: nothing can be written to or read from them) and which have fewer in-sync
replicas than replicas (under-replicated: a broker is down or behind, and one more
failure could stop writes). Asked every ``every_s`` with a metadata request, and served
as two gauges per topic, so that an operator sees a broker's failure from every process
that depends on it (alerts: deploy/prometheus/alerts.yml)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka.errors import KafkaError
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.kafka.probe import CLOSE_TIMEOUT_S

log = logging.getLogger(__name__)

#: How often the partitions' state is asked for.
EVERY_S = 10.0
#: How long its client may take to close when the process stops.
STOP_CLOSE_S = 1.0


class PartitionHealth(Collector):
    """``run`` keeps the counts of ``topics``' partitions up to date; ``collect`` serves
    them (a Prometheus collector)."""

    def __init__(self, kafka: KafkaClients, topics: Sequence[str], every_s: float = EVERY_S):
        self._kafka = kafka
        self._topics = list(topics)
        self._every_s = every_s
        self.offline: dict[str, int] = {}
        self.under_replicated: dict[str, int] = {}
        self.known = False  # a metadata answer has come

    def update(self, described: Iterable[dict[str, Any]]) -> None:
        """Count from a metadata answer (``describe_topics``)."""
        offline: dict[str, int] = {}
        under: dict[str, int] = {}
        for topic in described:
            name = topic["topic"]
            if name not in self._topics or topic["error_code"] != 0:
                continue
            partitions = topic["partitions"]
            offline[name] = sum(1 for p in partitions if p["leader"] < 0)
            under[name] = sum(1 for p in partitions if len(p["isr"]) < len(p["replicas"]))
        changed = (offline, under) != (self.offline, self.under_replicated)
        self.offline, self.under_replicated, self.known = offline, under, True
        if changed and (any(offline.values()) or any(under.values())):
            log.warning(
                "Kafka partitions: offline %s, under-replicated %s",
                {t: n for t, n in offline.items() if n},
                {t: n for t, n in under.items() if n},
            )
        elif changed:
            log.info("Kafka partitions: every partition of %s in sync", ", ".join(self._topics))

    async def run(self) -> None:
        """Until cancelled. While the cluster does not answer, the last counts stay (the
        broker probe says that it does not answer)."""
        admin = None
        try:
            while True:
                try:
                    if admin is None:
                        admin = self._kafka.admin()
                        await admin.start()
                    self.update(await admin.describe_topics(self._topics))
                except (KafkaError, OSError, TimeoutError) as exc:
                    log.debug("partition health: %r", exc)
                    if admin is not None:
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(admin.close(), CLOSE_TIMEOUT_S)
                    admin = None
                await asyncio.sleep(self._every_s)
        finally:
            if admin is not None:  # (cancelled: the process is stopping, do not hold it)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(admin.close(), STOP_CLOSE_S)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        if not self.known:
            return
        offline = GaugeMetricFamily(
            "arbstream_kafka_offline_partitions",
            "Partitions of the process's topics without a leader.",
            labels=["topic"],
        )
        under = GaugeMetricFamily(
            "arbstream_kafka_under_replicated_partitions",
            "Partitions of the process's topics with fewer in-sync replicas than replicas.",
            labels=["topic"],
        )
        for topic in self._topics:
            offline.add_metric([topic], self.offline.get(topic, 0))
            under.add_metric([topic], self.under_replicated.get(topic, 0))
        yield offline
        yield under
