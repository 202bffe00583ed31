"""The feeds' Kafka sink on a real broker: placement of quotes and fx, and a broker that
is unreachable (bounded buffer, oldest dropped, the rest delivered once it is back)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.sink import KafkaSink
from arbstream.config import Config, parse_config
from helpers.kafka import consume, free_port, kafka_sh, scaled, until

PARTITIONS = 4


def _config(**producer: Any) -> Config:
    return parse_config(
        {
            "topic_prefix": f"sink-{uuid.uuid4().hex[:12]}",
            "venues": {"COMEX": {"currency": "USD", "unit": "oz"}},
            "kafka": {"partitions": PARTITIONS},
            "producer": {"delivery_timeout_s": 5.0, **producer},
        }
    )


def _quote(instrument: str, seq: int) -> dict[str, Any]:
    return {
        "type": "quote",
        "venue": "COMEX",
        "instrument": instrument,
        "bid": 78.0 + seq / 100,
        "ask": 78.05 + seq / 100,
        "ts": 1_769_990_400_000 + seq,
        "seq": seq,
        "recv_ts": 1_769_990_400_100 + seq,
    }


def test_quotes_go_to_their_instrument_partition_and_fx_to_every_partition(
    kafka_bootstrap: str,
) -> None:
    config = _config()
    sink = KafkaSink(config, KafkaClients(kafka_bootstrap))
    sent: list[dict[str, Any]] = []
    for seq in range(300):
        sent.append(_quote(("XAG", "XAU", "XPT")[seq % 3], seq))
        if seq % 60 == 0:
            fx = {"type": "fx", "pair": "USDCNY", "bid": 7.1, "ask": 7.1 + seq / 1e4, "ts": seq}
            sent.append(fx)
    for record in sent:
        sink.put(record)
    n_fx = sum(r["type"] == "fx" for r in sent)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        await until(lambda: sink.stats.sent == len(sent), 30, "delivery")
        stop.set()
        await asyncio.wait_for(task, scaled(15))

    asyncio.run(run())
    ticks = asyncio.run(consume(kafka_bootstrap, f"{config.topic_prefix}.ticks", 300 + 4 * n_fx))
    partitioner = DefaultPartitioner()
    all_partitions = list(range(PARTITIONS))
    by_partition: dict[int, list[dict[str, Any]]] = {}
    for record in sorted(ticks, key=lambda r: (r.partition, r.offset)):
        value = orjson.loads(record.value)
        by_partition.setdefault(record.partition, []).append(value)
        if value["type"] == "quote":
            assert record.key == value["instrument"].encode()
            assert record.partition == partitioner(record.key, all_partitions, all_partitions)
        else:
            assert record.key == b"USDCNY"
    # every partition holds every fx record, in order with the quotes around it
    for partition, values in by_partition.items():
        expected = [
            r
            for r in sent
            if r["type"] == "fx"
            or partitioner(r["instrument"].encode(), all_partitions, all_partitions) == partition
        ]
        assert values == expected
    assert set(by_partition) == set(all_partitions)  # fx reached every partition
    fx_topic = asyncio.run(consume(kafka_bootstrap, f"{config.topic_prefix}.fx", n_fx, linger_s=1))
    assert [orjson.loads(r.value) for r in fx_topic] == [r for r in sent if r["type"] == "fx"]


@pytest.mark.kafka  # it starts a broker of its own, late
def test_unreachable_kafka_keeps_the_newest_records_up_to_the_bound(tmp_path: Path) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    config = _config(buffer_max_records=100, delivery_timeout_s=2.0)
    sink = KafkaSink(config, KafkaClients(bootstrap), retry_max_s=0.5)
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_DATA_DIR": str(tmp_path / "kafka")}
    env.pop("KAFKA_KEEP_DATA", None)
    env.pop("KAFKA_CONTROLLER_PORT", None)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        for seq in range(250):
            sink.put(_quote("XAG", seq))
            await asyncio.sleep(0.004)  # the feeds keep putting while Kafka is away
        await until(lambda: sink.stats.send_errors >= 2, 20, "failed connection attempts")
        assert sink.stats.sent == 0 and not sink.stats.connected
        assert len(sink.buffer) == 100 and sink.stats.dropped == 150
        # the broker comes up on that port; the sink must find it by itself
        await asyncio.to_thread(kafka_sh, "up", env, scaled(120))
        await until(lambda: sink.stats.sent == 100, 60, "delivery after the broker came up")
        stop.set()
        await asyncio.wait_for(task, scaled(15))

    try:
        asyncio.run(run())
        ticks = asyncio.run(consume(bootstrap, f"{config.topic_prefix}.ticks", 100, linger_s=1))
    finally:
        kafka_sh("down", env, scaled(60))
    seqs = [orjson.loads(r.value)["seq"] for r in sorted(ticks, key=lambda r: r.offset)]
    assert seqs == list(range(150, 250))  # the oldest 150 dropped, the rest once, in order


def test_stop_returns_within_the_drain_timeout_when_the_broker_never_answers() -> None:
    """A port that accepts connections and never answers: the worst case for shutdown."""

    async def run() -> tuple[float, KafkaSink]:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # never answer

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sink = KafkaSink(
            _config(delivery_timeout_s=30.0), KafkaClients(f"127.0.0.1:{port}"), drain_timeout_s=1
        )
        for seq in range(10):
            sink.put(_quote("XAG", seq))
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        await asyncio.sleep(1.0)  # the producer is stuck connecting
        stop.set()
        stopped = time.monotonic()
        await asyncio.wait_for(task, scaled(10))
        server.close()
        return time.monotonic() - stopped, sink

    took, sink = asyncio.run(run())
    assert took < 3.0, f"stop took {took:.1f} s"
    assert sink.stats.sent == 0 and len(sink.buffer) == 10  # given up, and said so (logged)
