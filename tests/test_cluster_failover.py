"""arbstream on a replicated cluster while brokers fail: three KRaft nodes, every topic
with replication 3 and min.insync.replicas 2, input flowing and the worker running while
a node is killed, stopped, restarted, in turn; the committed output per key equals replay
of the input (nothing lost, nothing twice), the worker process never restarted. Kafka's
own transactions system test does the same (tests/kafkatest/tests/core/
transactions_test.py: 3 brokers, bounced cleanly and hard-killed under a transactional
copier, a read_committed reader checking for loss and duplicates).

Each test prints how long commits stalled (the longest time without a new committed
output while input flowed); docs/deploy.md reports them.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.kafka.topics import Topics, ensure_topics
from helpers.cluster import Cluster, CommitWatch, three_node_cluster
from helpers.deployment import Deployment, deployment_config, generated
from helpers.gateway import Clients, GatewayProcess, final_view, topic_messages
from helpers.kafka import consume, free_port, scaled, wait_for
from helpers.paths import SCENARIOS
from helpers.pipeline import arbstream_process

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

#: The input is produced in this many slices, this far apart: about 30 s of flow, so a
#: node fails while it arrives; its last slice waits until the failure is over.
PARTS, PAUSE_S = 80, 0.4
#: How long after the input starts the failure comes, and how long a node stays down.
FAIL_AFTER_S, DOWN_S = 4.0, 6.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from three_node_cluster(tmp_path_factory.mktemp("cluster"))


def replicated(cluster: Cluster, tmp_path: Path, n: int = 2500, seed: int = 5) -> Deployment:
    """A generated deployment on the cluster, its topics replicated 3 times."""
    text, lines = generated(seed, n)
    path, config = deployment_config(tmp_path, text, replication=3)
    asyncio.run(ensure_topics(KafkaClients(cluster.bootstrap), config))
    return Deployment(path, config, lines, cluster.bootstrap, tmp_path)


def survive(
    cluster: Cluster,
    dep: Deployment,
    name: str,
    failure: Callable[[], None],
    parts: int = PARTS,
) -> float:
    """Input flowing and the worker running while ``failure`` happens: the output must
    equal replay, the worker must never have stopped. Returns (and prints) how long
    commits stalled."""
    worker = dep.worker()
    watch = CommitWatch(cluster.bootstrap, [dep.topics.spreads, dep.topics.signals])
    try:
        worker.wait_ready()
        watch.start()
        over = threading.Event()
        producer = dep.produce_paced(parts, PAUSE_S, hold_last=over)
        time.sleep(FAIL_AFTER_S)
        began = time.monotonic()
        failure()
        # (the last slice of input arrives only now: commits must resume for it, however
        # long the failure took on a busy machine)
        over.set()
        producer.join(scaled(180))
        assert not producer.is_alive(), "the input was not delivered"
        ended = time.monotonic()
        dep.check_equals_replay()
        assert worker.alive(), worker.log_tail()
    finally:
        watch.stop()
        status = worker.stop()
    assert status == 0, worker.log_tail()
    stall = watch.longest_gap(began, ended)
    print(f"\nFAILOVER {name}: commits stalled {stall:.1f} s at most", flush=True)
    assert_quiet(worker.log_path.read_text())
    return stall


def assert_quiet(log: str) -> None:
    """No traceback, and warnings limited as the outage rules say (5 of a kind a
    minute): a failover is an incident, not a flood."""
    assert "Traceback" not in log, log[-3000:]
    warnings = [line for line in log.splitlines() if "[WARNING]" in line or "[ERROR]" in line]
    assert len(warnings) < 60, "\n".join(warnings[-20:])


def busiest_ticks_partition(dep: Deployment) -> int:
    """The ticks partition with most quotes (the generated input's instruments hash to
    some of the four)."""
    from arbstream.agents.outputs import key_partition  # noqa: PLC0415
    from arbstream.agents.routing import route  # noqa: PLC0415

    counts = [0] * 4
    for line in dep.lines:
        kind, key = route(line)
        if kind == "quote" and key is not None:
            counts[key_partition(key, 4)] += 1
    return counts.index(max(counts))


def test_the_leader_of_a_ticks_partition_is_killed_and_comes_back(
    cluster: Cluster, tmp_path: Path
) -> None:
    dep = replicated(cluster, tmp_path)
    leader = cluster.leader(dep.topics.ticks, busiest_ticks_partition(dep))

    def kill_and_restart() -> None:
        cluster.node("kill", leader)
        time.sleep(DOWN_S)
        cluster.node("start", leader)

    survive(cluster, dep, "SIGKILL of a ticks partition's leader", kill_and_restart)
    cluster.wait_in_sync()


def test_the_leader_of_an_output_partition_is_stopped_and_comes_back(
    cluster: Cluster, tmp_path: Path
) -> None:
    dep = replicated(cluster, tmp_path)
    leader = cluster.leader(dep.topics.spreads, 0)

    def stop_and_restart() -> None:
        cluster.node("stop", leader)
        time.sleep(DOWN_S)
        cluster.node("start", leader)

    survive(cluster, dep, "SIGTERM of an output partition's leader", stop_and_restart)
    cluster.wait_in_sync()


def test_the_transaction_coordinator_is_killed(cluster: Cluster, tmp_path: Path) -> None:
    dep = replicated(cluster, tmp_path)
    busiest = busiest_ticks_partition(dep)

    def kill_the_coordinator() -> None:
        node = cluster.transaction_coordinator(dep.topics.transactional_id(busiest))
        cluster.node("kill", node)
        time.sleep(DOWN_S)
        cluster.node("start", node)

    # the worker's producers exist (and so their coordinators) once it is ready
    survive(cluster, dep, "SIGKILL of the transaction coordinator", kill_the_coordinator)
    cluster.wait_in_sync()


def test_a_rolling_restart(cluster: Cluster, tmp_path: Path) -> None:
    dep = replicated(cluster, tmp_path, n=6000)

    def every_node_in_turn() -> None:
        for node in (1, 2, 3):
            cluster.node("stop", node)
            cluster.node("start", node)
            cluster.wait_in_sync()  # as an upgrade does, before the next node

    # (the input flows until the last node is back)
    survive(cluster, dep, "a rolling restart", every_node_in_turn, parts=150)


def test_a_worker_killed_on_the_cluster_hands_its_partitions_over(
    cluster: Cluster, tmp_path: Path
) -> None:
    dep = replicated(cluster, tmp_path)
    watch = CommitWatch(cluster.bootstrap, [dep.topics.spreads, dep.topics.signals])
    watch.start()
    try:
        dep.survive_sigkill(parts=PARTS, pause_s=PAUSE_S, kill_after_s=FAIL_AFTER_S)
    finally:
        watch.stop()
    # (from the first output to the last: the kill's gap is the longest)
    stall = watch.longest_gap(watch.arrivals[0], watch.arrivals[-1])
    print(f"\nFAILOVER a worker SIGKILLed, another taking over: {stall:.1f} s", flush=True)


FEEDS = """
[feeds.shfe]
protocol = "native"
url = "ws://127.0.0.1:{shfe}/shfe"
venue = "SHFE"

[feeds.comex]
protocol = "native"
url = "ws://127.0.0.1:{comex}/comex"
venue = "COMEX"
"""


def test_the_feeds_write_every_quote_once_through_a_leader_kill(
    cluster: Cluster, tmp_path: Path
) -> None:
    scenario = SCENARIOS / "dislocation-2026-01-30"
    text = (scenario / "config.toml").read_text()
    text += FEEDS.format(shfe=free_port(), comex=free_port())
    path, config = deployment_config(tmp_path, text, replication=3)
    asyncio.run(ensure_topics(KafkaClients(cluster.bootstrap), config))
    lines = [x for x in (scenario / "ticks.jsonl").read_bytes().splitlines() if _quote_of(x)]
    lines = lines[:1200]
    ticks = tmp_path / "ticks.jsonl"
    ticks.write_bytes(b"\n".join(lines) + b"\n")
    topics = Topics(config.topic_prefix)
    env = {
        **os.environ,
        "ARBSTREAM_BROKER": f"kafka://{cluster.bootstrap.replace(',', ';')}",
        "ARBSTREAM_FEED_METRICS_PORT": str(free_port()),
    }
    feeds = arbstream_process(["feed", "--config", str(path)], env, tmp_path / "feeds.log")
    simulate = ["simulate", "--config", str(path), "--scenario", str(ticks), "--speed", "60"]
    simulator = arbstream_process(simulate, env, tmp_path / "simulator.log")
    try:
        time.sleep(FAIL_AFTER_S)
        leader = cluster.leader(topics.ticks, 0)
        cluster.node("kill", leader)
        time.sleep(DOWN_S)
        cluster.node("start", leader)
        assert simulator.wait(scaled(120)) == 0, simulator.tail(20)
        got = asyncio.run(consume(cluster.bootstrap, topics.ticks, len(lines), linger_s=3))
    finally:
        if simulator.alive():
            simulator.terminate()
        assert feeds.stop(scaled(30)) == 0, feeds.tail(20)
    sent = sorted((q["venue"], q["ts"], q["bid"], q["ask"]) for q in map(orjson.loads, lines))
    written = sorted(
        (q["venue"], q["ts"], q["bid"], q["ask"]) for q in (orjson.loads(r.value) for r in got)
    )
    assert written == sent, f"{len(written)} quotes in Kafka for {len(sent)} sent"
    assert_quiet((tmp_path / "feeds.log").read_text())
    cluster.wait_in_sync()


def _quote_of(line: bytes) -> bool:
    """A quote of SHFE or COMEX (what the scenario's feeds here serve)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(record, dict) and record.get("venue") in ("SHFE", "COMEX")


def test_the_gateway_keeps_serving_through_a_leader_kill(cluster: Cluster, tmp_path: Path) -> None:
    dep = replicated(cluster, tmp_path)
    gateway = GatewayProcess(
        dep.config_path,
        cluster.bootstrap.replace(",", ";"),
        tmp_path / "gateway.log",
    )
    clients = Clients()
    worker = dep.worker()
    try:
        gateway.wait_ready()
        worker.wait_ready()
        everything, _ = clients.subscribe(gateway.url, {})
        wait_for(lambda: everything.snapshots_done > 0, 30, "a snapshot")
        producer = dep.produce_paced(PARTS, PAUSE_S)
        time.sleep(FAIL_AFTER_S)
        leader = cluster.leader(dep.topics.spreads, 0)
        cluster.node("kill", leader)
        # the records go on reaching the client with the node still down (once the
        # cluster has moved its partitions' leaders: the broker session timeout)
        seen = len(everything.live)
        wait_for(lambda: len(everything.live) > seen + 100, 30, "records with a node down")
        cluster.node("start", leader)
        producer.join(scaled(180))
        dep.check_equals_replay()
        topics = dep.topics
        names = (topics.ticks, topics.spreads, topics.basis, topics.signals)
        committed = topic_messages(
            {
                name: asyncio.run(
                    consume(
                        cluster.bootstrap, name, 0, isolation_level="read_committed", linger_s=2
                    )
                )
                for name in names
            },
            frozenset(dep.config.venues),
        )
        want = final_view(committed)
        wait_for(
            lambda: final_view(everything.snapshot + everything.live) == want,
            60,
            "the client's view equal to the topics",
        )
    finally:
        clients.close()
        assert worker.stop() == 0, worker.log_tail()
        assert gateway.stop() == 0
    assert_quiet((tmp_path / "gateway.log").read_text())
    cluster.wait_in_sync()


def test_the_worker_refuses_topics_that_would_break_its_guarantees(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Made by hand with replication 1 where the config asks 3, or a state topic that is
    not compacted: the worker says so at start, in one line, status 2."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from helpers.kafka import create_topic  # noqa: PLC0415

    text, _ = generated(5, 10)
    path, config = deployment_config(tmp_path, text, replication=3)
    topics = Topics(config.topic_prefix)
    for name in topics.all():
        asyncio.run(
            create_topic(cluster.bootstrap, name, 4, {"min.insync.replicas": "2"}, replication=3)
        )
    asyncio.run(
        create_topic(
            cluster.bootstrap, topics.state, 4, {"cleanup.policy": "delete"}, replication=1
        )
    )
    env = {
        **os.environ,
        "ARBSTREAM_BROKER": f"kafka://{cluster.bootstrap}",
        "ARBSTREAM_WEB_PORT": str(free_port()),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "arbstream.cli", "worker", "--config", str(path)],
        env=env, capture_output=True, text=True, timeout=scaled(60), check=False,
    )  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert re.search(rf"'{re.escape(topics.state)}'.*(replication|compact)", lines[0]), lines[0]
