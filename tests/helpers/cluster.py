"""A three-node Kafka cluster for tests (``KAFKA_NODES=3 deploy/kafka/kafka.sh up``):
replication 3 and min.insync.replicas 2 for every internal topic, nodes stopped, killed
and started again by number, and questions a failover test asks of it (which node leads
a partition, which coordinates a transactional id, is anything under-replicated), and a
watch of when committed outputs arrive (how long commits stalled)."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from arbstream.agents.kafka.clients import KafkaClients
from helpers.kafka import bindable, free_port, kafka_sh, launched, port_slice, scaled, wait_for

NODES = 3


@dataclass(frozen=True)
class Cluster:
    port: int  # node N listens on port + N - 1
    data_dir: Path

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.port + n}" for n in range(NODES))

    def env(self) -> dict[str, str]:
        return {**os.environ, "KAFKA_PORT": str(self.port), "KAFKA_DATA_DIR": str(self.data_dir)}

    def node(self, command: str, n: int) -> None:
        """``kafka.sh stop|kill|start N``."""
        kafka_sh(command, self.env(), scaled(120), n)

    def leader(self, topic: str, partition: int) -> int:
        """The node that leads ``topic``'s ``partition`` now."""
        return asyncio.run(_leader(self.bootstrap, topic, partition))

    def transaction_coordinator(self, transactional_id: str) -> int:
        """The node whose transaction coordinator owns ``transactional_id`` now."""
        return asyncio.run(_coordinator(self.bootstrap, transactional_id))

    def wait_in_sync(self, timeout_s: float = 60) -> float:
        """Until no partition of the cluster is under-replicated (after a node came back,
        as an operator waits before restarting the next); returns the seconds it took."""
        return wait_for(
            lambda: asyncio.run(_under_replicated(self.bootstrap)) == 0,
            timeout_s,
            "every partition in sync",
            every_s=0.5,
        )


async def _leader(bootstrap: str, topic: str, partition: int) -> int:
    """(Asked again while the node that answers does not know the partition's leader
    yet: a topic made a moment ago.)"""
    admin = KafkaClients(bootstrap).admin()
    await admin.start()
    deadline = time.monotonic() + scaled(30)
    try:
        while time.monotonic() < deadline:
            for described in await admin.describe_topics([topic]):
                for p in described["partitions"]:
                    if p["partition"] == partition and p["leader"] >= 0:
                        return int(p["leader"])
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    raise AssertionError(f"no leader of partition {partition} of {topic}")


async def _coordinator(bootstrap: str, transactional_id: str) -> int:
    admin = KafkaClients(bootstrap).admin()
    await admin.start()
    try:
        return int(await admin.find_coordinator(transactional_id, coordinator_type=1))
    finally:
        await admin.close()


async def _under_replicated(bootstrap: str) -> int:
    admin = KafkaClients(bootstrap).admin()
    await admin.start()
    try:
        described = await admin.describe_topics()
    finally:
        await admin.close()
    return sum(
        1
        for topic in described
        for p in topic["partitions"]
        if p["leader"] < 0 or len(p["isr"]) < len(p["replicas"])
    )


def three_free_ports() -> int:
    """A port p with p, p + 1 and p + 2 free, all in this process's share."""
    for _ in range(100):
        port = free_port()
        if port + NODES <= port_slice()[1] and all(bindable(port + n) for n in range(1, NODES)):
            return port
    raise RuntimeError("no three consecutive free ports")


def three_node_cluster(tmp: Path) -> Iterator[Cluster]:
    """A cluster of three nodes, stopped (and its data deleted) after."""
    cluster = Cluster(three_free_ports(), tmp / "cluster")
    env = {**cluster.env(), "KAFKA_NODES": str(NODES)}
    for name in ("KAFKA_KEEP_DATA", "KAFKA_CONTROLLER_PORT", "KAFKA_SECURITY"):
        env.pop(name, None)
    with launched(env, down_s=90):
        yield cluster


@dataclass
class CommitWatch:
    """When committed records of ``topics`` arrive at a read_committed reader: the gaps
    between arrivals while input flows are how long commits stalled."""

    bootstrap: str
    topics: list[str]
    arrivals: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()

    async def _run(self) -> None:
        consumer = KafkaClients(self.bootstrap).consumer(
            *self.topics,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        await consumer.start()
        try:
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=100)
                if any(batches.values()):
                    self.arrivals.append(time.monotonic())
        finally:
            await consumer.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(scaled(30))

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time without a new committed record from ``start`` until the
        first arrival after ``end`` (monotonic seconds; input flowed from before
        ``start`` until ``end``, so every gap in between is a stall)."""
        i = bisect.bisect_left(self.arrivals, start)
        j = bisect.bisect_right(self.arrivals, end)
        points = [start, *self.arrivals[i : j + 1]]
        return max(b - a for a, b in itertools.pairwise(points)) if len(points) > 1 else 0.0
