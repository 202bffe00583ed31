"""Foundation tests: the real Kafka broker behaves as the project relies on (via aiokafka)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections import defaultdict
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from helpers.kafka import (
    KAFKA_SH,
    Record,
    consume,
    describe_topic_config,
    end_offsets,
    produce,
    scaled,
)


def test_round_trip_10k_records_three_partitions_in_order(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    partitions = 3
    total = 10_000
    topic = topic_factory(partitions, prefix="roundtrip")
    records = [
        (f"k{i}".encode(), f"{i % partitions}:{i // partitions}".encode(), i % partitions)
        for i in range(total)
    ]

    asyncio.run(produce(kafka_bootstrap, topic, records))
    consumed = asyncio.run(consume(kafka_bootstrap, topic, total, timeout_s=60, linger_s=1.0))

    assert len(consumed) == total, f"expected {total} records, got {len(consumed)}"
    by_partition: dict[int, list[Record]] = defaultdict(list)
    for record in consumed:
        by_partition[record.partition].append(record)
    assert sorted(by_partition) == list(range(partitions))
    for partition, recs in by_partition.items():
        expected_n = len(range(partition, total, partitions))
        assert [r.offset for r in recs] == list(range(expected_n)), "gap/duplicate offsets"
        seqs = []
        for r in recs:
            value_partition, seq = r.value.decode().split(":")
            assert int(value_partition) == partition, f"record in wrong partition: {r}"
            seqs.append(int(seq))
        assert seqs == list(range(expected_n)), f"partition {partition} out of order/lost"
    assert asyncio.run(end_offsets(kafka_bootstrap, topic)) == {
        p: len(range(p, total, partitions)) for p in range(partitions)
    }


def test_compacted_topic_created_and_described(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(2, compact=True, prefix="compact")
    config = asyncio.run(describe_topic_config(kafka_bootstrap, topic))
    assert config["cleanup.policy"] == "compact"

    plain = topic_factory(prefix="plain")
    assert asyncio.run(describe_topic_config(kafka_bootstrap, plain))["cleanup.policy"] == "delete"


def test_transactions_read_committed_sees_only_committed(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(1, prefix="txn")

    async def scenario() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap,
            transactional_id=f"txn-{uuid.uuid4().hex}",
            request_timeout_ms=int(scaled(30) * 1000),
        )
        await asyncio.wait_for(producer.start(), scaled(30))
        try:
            async with producer.transaction():
                await producer.send(topic, b"committed-1", key=b"k")
            await producer.begin_transaction()
            await producer.send(topic, b"aborted-1", key=b"k")
            await producer.send(topic, b"aborted-2", key=b"k")
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send(topic, b"committed-2", key=b"k")
        finally:
            await producer.stop()

    asyncio.run(scenario())
    # one more transaction through the helper (begin/commit in produce())
    asyncio.run(
        produce(
            kafka_bootstrap,
            topic,
            [(b"k", b"committed-3", None)],
            transactional_id=f"txn-{uuid.uuid4().hex}",
        )
    )

    committed = asyncio.run(
        consume(kafka_bootstrap, topic, 3, isolation_level="read_committed", linger_s=1.0)
    )
    assert [r.value for r in committed] == [b"committed-1", b"committed-2", b"committed-3"]

    # read_uncommitted does see the aborted records (proves they really were written)
    everything = asyncio.run(consume(kafka_bootstrap, topic, 5, linger_s=0.5))
    assert sorted(r.value for r in everything) == sorted(
        [b"committed-1", b"aborted-1", b"aborted-2", b"committed-2", b"committed-3"]
    )


def test_consumer_group_commit_and_resume(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(2, prefix="group")
    group = f"g-{uuid.uuid4().hex}"

    async def read_group(expected: int) -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await asyncio.wait_for(consumer.start(), scaled(30))
        values: list[bytes] = []
        try:
            deadline = asyncio.get_running_loop().time() + scaled(30)
            while len(values) < expected:
                assert asyncio.get_running_loop().time() < deadline, f"only got {values}"
                batches = await consumer.getmany(timeout_ms=500)
                values += [m.value for msgs in batches.values() for m in msgs]
            await consumer.commit()
            # nothing beyond what was expected
            extra = await consumer.getmany(timeout_ms=int(scaled(0.5) * 1000))
            values += [m.value for msgs in extra.values() for m in msgs]
        finally:
            await consumer.stop()
        return values

    asyncio.run(produce(kafka_bootstrap, topic, [(None, b"a%d" % i, i % 2) for i in range(4)]))
    assert sorted(asyncio.run(read_group(4))) == [b"a0", b"a1", b"a2", b"a3"]
    asyncio.run(produce(kafka_bootstrap, topic, [(None, b"b%d" % i, i % 2) for i in range(3)]))
    assert sorted(asyncio.run(read_group(3))) == [b"b0", b"b1", b"b2"]


def test_the_launcher_refuses_a_node_it_does_not_have(kafka_bootstrap: str) -> None:
    """``kafka.sh stop|kill|start N`` act on one node of a cluster (the failover tests use
    them); on a single broker only node 1 exists, and anything else is refused, naming
    what there is, without touching the broker."""
    env = {**os.environ, "KAFKA_PORT": kafka_bootstrap.rsplit(":", 1)[1]}
    env.pop("KAFKA_DATA_DIR", None)
    for args in (["stop", "2"], ["kill", "x"], ["start", ""]):
        proc = subprocess.run(
            ["bash", str(KAFKA_SH), *args], env=env, capture_output=True, text=True,
            timeout=scaled(30), check=False,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert "a node number from 1 to 1" in proc.stderr, proc.stderr
    status = subprocess.run(
        ["bash", str(KAFKA_SH), "status"], env=env, capture_output=True, text=True, check=False
    )
    assert status.returncode == 0 and "running" in status.stdout, status.stdout + status.stderr
