"""Small async helpers for tests that talk to a real Kafka broker via aiokafka.

Every timeout is multiplied by ``ARBSTREAM_TIMEOUT_FACTOR`` (float, default 1) so slow
machines / CI can scale them all at once. Sync tests call these with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from arbstream.agents.kafka.clients import KafkaClients

#: Where a helper connects: a plain broker's ``host:port``, or the clients of a user of
#: a secured one.
Where = str | KafkaClients


def clients(where: Where) -> KafkaClients:
    """``where`` as the clients of a user (a plain address: no security)."""
    return where if isinstance(where, KafkaClients) else KafkaClients(where)


def timeout_factor() -> float:
    """The ``ARBSTREAM_TIMEOUT_FACTOR`` env var (default 1.0)."""
    raw = os.environ.get("ARBSTREAM_TIMEOUT_FACTOR", "").strip()
    factor = float(raw) if raw else 1.0
    if factor <= 0:
        raise ValueError(f"ARBSTREAM_TIMEOUT_FACTOR must be > 0, got {raw!r}")
    return factor


def scaled(seconds: float) -> float:
    """``seconds`` scaled by ``ARBSTREAM_TIMEOUT_FACTOR``."""
    return seconds * timeout_factor()


async def until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` every 10 ms until it holds; fail after ``timeout_s`` (scaled)."""
    deadline = time.monotonic() + scaled(timeout_s)
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)


def wait_for(
    condition: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.05
) -> float:
    """Poll ``condition`` every ``every_s`` until it holds; fail after ``timeout_s``
    (scaled). Returns the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > scaled(timeout_s):
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)
    return time.monotonic() - start


#: Where test servers listen: below the kernel's ephemeral range (outgoing connections
#: take their source ports from it, so a port the kernel chose there can be taken by a
#: client's connection before the server meant for it starts: CI saw a simulated venue
#: fail with "address already in use").
PORTS_FROM = 20000
_ports = random.Random()  # its own: a test that seeds the global one must not repeat ports


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


@functools.cache
def port_slice() -> tuple[int, int]:
    """This test process's ports, [low, high): its own share of the range, so that the
    processes of ``pytest -n`` never pick the same one."""
    low, high = PORTS_FROM, max(PORTS_FROM + 1000, _ephemeral_low())
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) if worker.isdigit() else 0
    size = (high - low) // max(1, count)
    return low + index * size, low + (index + 1) * size


def bindable(port: int) -> bool:
    """Whether a server could listen on ``port`` of 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 free now, drawn at random from this process's share of
    the ports below the ephemeral range."""
    low, high = port_slice()
    for _ in range(500):
        port = _ports.randrange(low, high)
        if bindable(port):
            return port
    raise RuntimeError(f"no free port in {low}-{high - 1}")


@dataclass(frozen=True)
class Record:
    """A consumed record."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes


#: (key, value, partition) -- partition None lets the producer's partitioner choose.
ProduceRecord = tuple[bytes | None, bytes, int | None]


async def produce(
    bootstrap: Where,
    topic: str,
    records: Sequence[ProduceRecord],
    *,
    transactional_id: str | None = None,
) -> None:
    """Produce ``records`` (idempotent, acks=all) and wait until all are acknowledged.

    With ``transactional_id`` all records go into one committed transaction.
    """
    producer = clients(bootstrap).producer(
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        transactional_id=transactional_id,
        request_timeout_ms=int(scaled(30) * 1000),
    )
    await asyncio.wait_for(producer.start(), scaled(30))
    try:
        if transactional_id is not None:
            await producer.begin_transaction()
        futures = [
            await producer.send(topic, value=value, key=key, partition=partition)
            for key, value, partition in records
        ]
        await asyncio.wait_for(asyncio.gather(*futures), scaled(60))
        if transactional_id is not None:
            await asyncio.wait_for(producer.commit_transaction(), scaled(30))
    finally:
        await producer.stop()


async def consume(
    bootstrap: Where,
    topic: str,
    expected_count: int,
    timeout_s: float = 30.0,
    *,
    isolation_level: str = "read_uncommitted",
    linger_s: float = 0.0,
) -> list[Record]:
    """Read ``topic`` from the beginning of all partitions (no consumer group).

    Returns as soon as ``expected_count`` records arrived (then keeps polling ``linger_s``
    more seconds to catch unexpected extra records). Raises ``TimeoutError`` when fewer
    than ``expected_count`` arrive within ``timeout_s`` (scaled).
    """
    consumer = clients(bootstrap).consumer(
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation_level,
        max_poll_records=5000,
    )
    partitions = await topic_partitions(bootstrap, topic)
    await asyncio.wait_for(consumer.start(), scaled(30))
    records: list[Record] = []
    try:
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + scaled(timeout_s)
        while len(records) < expected_count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"consumed {len(records)} of {expected_count} records from {topic!r} "
                    f"within {scaled(timeout_s):.1f}s"
                )
            records.extend(await _poll(consumer, min(remaining, 1.0)))
        linger_until = time.monotonic() + scaled(linger_s)
        while (remaining := linger_until - time.monotonic()) > 0:
            records.extend(await _poll(consumer, min(remaining, 0.5)))
    finally:
        await consumer.stop()
    return records


async def _poll(consumer: AIOKafkaConsumer, timeout_s: float) -> list[Record]:
    batches = await consumer.getmany(timeout_ms=max(1, int(timeout_s * 1000)))
    return [
        Record(partition=tp.partition, offset=m.offset, key=m.key, value=m.value)
        for tp, messages in batches.items()
        for m in messages
    ]


async def topic_partitions(bootstrap: Where, topic: str, timeout_s: float = 30.0) -> list[int]:
    """Partition ids of ``topic``, waiting (``timeout_s`` scaled) until it is in metadata."""
    admin = _admin(bootstrap)
    await asyncio.wait_for(admin.start(), scaled(30))
    try:
        deadline = time.monotonic() + scaled(timeout_s)
        while True:
            for described in await admin.describe_topics([topic]):
                if described["topic"] == topic and described["error_code"] == 0:
                    partitions = sorted(p["partition"] for p in described["partitions"])
                    if partitions:
                        return partitions
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic!r} not found in metadata")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def _admin(bootstrap: Where) -> AIOKafkaAdminClient:
    return clients(bootstrap).admin(request_timeout_ms=int(scaled(30) * 1000))


async def end_offsets(bootstrap: Where, topic: str) -> dict[int, int]:
    """Partition -> high watermark (log end offset)."""
    partitions = await topic_partitions(bootstrap, topic)
    consumer = clients(bootstrap).consumer(enable_auto_commit=False)
    await asyncio.wait_for(consumer.start(), scaled(30))
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        offsets = await asyncio.wait_for(consumer.end_offsets(tps), scaled(30))
        return {tp.partition: offset for tp, offset in offsets.items()}
    finally:
        await consumer.stop()


async def group_offsets(bootstrap: Where, group: str, topic: str) -> dict[int, int]:
    """Partition of ``topic`` -> the offset consumer group ``group`` has committed (the
    partitions it has committed nothing for are left out)."""
    admin = _admin(bootstrap)
    await asyncio.wait_for(admin.start(), scaled(30))
    try:
        offsets = await asyncio.wait_for(admin.list_consumer_group_offsets(group), scaled(30))
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


def wait_group_at_end(bootstrap: Where, group: str, topic: str, timeout_s: float = 20.0) -> None:
    """Wait until ``group`` has committed every partition of ``topic`` up to its end (a
    worker's lag, as Kafka's own tools show it, back to 0 once it is idle)."""
    ends = asyncio.run(end_offsets(bootstrap, topic))
    seen: dict[int, int] = {}

    def at_end() -> bool:
        seen.update(asyncio.run(group_offsets(bootstrap, group, topic)))
        return all(seen.get(p, 0) >= end for p, end in ends.items())

    try:
        wait_for(at_end, timeout_s, f"group {group} at {ends}", every_s=0.5)
    except AssertionError as exc:
        # what was committed is known only now (the message was built before polling)
        raise AssertionError(f"{exc}; committed: {seen}") from None


async def create_topic(
    bootstrap: Where,
    name: str,
    partitions: int = 1,
    config: Mapping[str, str] | None = None,
    replication: int = 1,
) -> None:
    """Create ``name`` and wait until metadata shows all partitions with a leader."""
    admin = _admin(bootstrap)
    await asyncio.wait_for(admin.start(), scaled(30))
    try:
        topic = NewTopic(name, partitions, replication, topic_configs=dict(config or {}))
        response = await admin.create_topics([topic], timeout_ms=int(scaled(30) * 1000))
        for error in response.to_object()["topic_errors"]:
            if error["error_code"] != 0:
                raise RuntimeError(f"creating topic {name!r} failed: {error}")
        deadline = time.monotonic() + scaled(30)
        while True:
            described = await admin.describe_topics([name])
            if _topic_ready(described, name, partitions):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {name!r} not visible in metadata: {described}")
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


def _topic_ready(described: list[Any], name: str, partitions: int) -> bool:
    for topic in described:
        if topic["topic"] == name and topic["error_code"] == 0:
            parts = topic["partitions"]
            return len(parts) == partitions and all(p["leader"] >= 0 for p in parts)
    return False


async def describe_topic_config(bootstrap: Where, topic: str) -> dict[str, str]:
    """The effective configuration of ``topic`` (name -> value)."""
    admin = _admin(bootstrap)
    await asyncio.wait_for(admin.start(), scaled(30))
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    config: dict[str, str] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"] != 0:
                raise RuntimeError(f"describe_configs({topic!r}) failed: {resource}")
            for entry in resource["config_entries"]:
                config[entry["config_names"]] = entry["config_value"]
    return config


async def alter_topic_config(bootstrap: Where, topic: str, config: Mapping[str, str]) -> None:
    """Set ``config`` on ``topic`` (the topic's other overrides are reset to defaults)."""
    admin = _admin(bootstrap)
    await asyncio.wait_for(admin.start(), scaled(30))
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, dict(config))
        responses = await admin.alter_configs([resource])
    finally:
        await admin.close()
    for response in responses:
        for resource_result in response.to_object()["resources"]:
            if resource_result["error_code"] != 0:
                raise RuntimeError(f"alter_configs({topic!r}) failed: {resource_result}")


KAFKA_SH = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "kafka.sh"


def kafka_sh(command: str, env: dict[str, str], timeout_s: float, *args: object) -> None:
    """Run ``deploy/kafka/kafka.sh COMMAND ARGS``; raise with its output if it fails."""
    proc = subprocess.run(
        ["bash", str(KAFKA_SH), command, *map(str, args)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"`kafka.sh {command}` failed with exit code {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )


@contextlib.contextmanager
def launched(env: dict[str, str], down_s: float = 60.0) -> Iterator[None]:
    """A broker (or cluster) that ``kafka.sh up`` starts with ``env``, stopped after; a
    start that fails is cleaned up too, its error kept (a failed cleanup is a note)."""
    try:
        # generous: the first run may also download the jars (kafka.sh fetch)
        kafka_sh("up", env, scaled(300))
    except BaseException as exc:
        try:
            kafka_sh("down", env, scaled(down_s))
        except Exception as down_exc:
            exc.add_note(f"cleanup `kafka.sh down` also failed: {down_exc}")
        if isinstance(exc, subprocess.TimeoutExpired):
            raise RuntimeError(f"`kafka.sh up` timed out: {exc}") from exc
        raise
    try:
        yield
    finally:
        kafka_sh("down", env, scaled(down_s))
