"""kafka.sh's request log (KAFKA_REQUEST_LOG) on a broker of its own, read by
benchmarks/request_log.py: the transactions a producer ran are found in it, step by
step, and the broker's own log stays free of requests."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from benchmarks import request_log
from benchmarks.request_log import Request, RequestLogError
from helpers.kafka import create_topic, free_port, kafka_sh, scaled

# (it starts brokers of its own, with the request log on)
pytestmark = pytest.mark.kafka

TRANSACTIONS = 5


async def run_transactions(bootstrap: str, topic: str, txn_id: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id)
    await producer.start()
    try:
        for i in range(TRANSACTIONS):
            async with producer.transaction():
                for p in (0, 1):
                    await producer.send_and_wait(topic, f"{i}".encode(), partition=p)
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    """(request log, broker log, transactional id) of a broker that ran TRANSACTIONS
    transactions of one producer with its request log on."""
    tmp = tmp_path_factory.mktemp("request-log")
    port = free_port()
    data_dir = tmp / "kafka"
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_DATA_DIR": str(data_dir),
        "KAFKA_REQUEST_LOG": str(tmp / "logs" / "requests.log"),  # a directory made for it
    }
    env.pop("KAFKA_KEEP_DATA", None)
    env.pop("KAFKA_CONTROLLER_PORT", None)
    txn_id = f"request-log-{uuid.uuid4().hex[:8]}"
    kafka_sh("up", env, scaled(300))
    try:
        bootstrap = f"127.0.0.1:{port}"
        asyncio.run(create_topic(bootstrap, "logged", partitions=2))
        asyncio.run(run_transactions(bootstrap, "logged", txn_id))
        broker_log = (data_dir / "broker.log").read_text()
    finally:
        kafka_sh("down", env, scaled(60))
    (tmp / "broker.log").write_text(broker_log)
    yield tmp / "logs" / "requests.log", tmp / "broker.log", txn_id


def requests_of(path: Path) -> list[Request]:
    with path.open("rb") as f:
        return list(request_log.parse(f))


def test_every_transaction_is_in_the_request_log(logged: tuple[Path, Path, str]) -> None:
    path, broker_log, txn_id = logged
    requests = requests_of(path)
    own = [r for r in requests if r.txn_id == txn_id]
    ends = [r for r in own if r.api == "END_TXN"]
    assert len(ends) == TRANSACTIONS
    assert sum(r.role == "PRODUCE transactional" for r in own) >= TRANSACTIONS
    assert sum(r.api == "ADD_PARTITIONS_TO_TXN" for r in own) >= TRANSACTIONS
    producer_ids = {r.producer_id for r in ends}
    markers = [
        r for r in requests if r.api == "WRITE_TXN_MARKERS" and r.producer_id in producer_ids
    ]
    assert len(markers) == TRANSACTIONS
    for r in requests:
        assert r.read <= r.answered
        assert all(t >= 0 for t in r.times.values())
        assert r.times["total"] >= r.times["queue"] + r.times["local"] - 0.01
    assert request_log.busiest_transaction(requests) == txn_id
    assert "Completed request" not in broker_log.read_text()  # only in the request log


def test_the_chain_follows_one_producer_in_order(logged: tuple[Path, Path, str]) -> None:
    path, _, txn_id = logged
    lines = request_log.chain(requests_of(path), txn_id)
    assert lines[0].startswith(f"{txn_id}: {TRANSACTIONS} transactions;")
    steps = {line.split("  ")[0] for line in lines[2:]}
    for step in (
        "in the broker: END_TXN",
        "in the broker: WRITE_TXN_MARKERS",
        "END_TXN answered -> WRITE_TXN_MARKERS read",
    ):
        assert step in steps


def test_the_command_prints_both_tables(
    logged: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, txn_id = logged
    assert request_log.main([str(path), "--least", "1"]) == 0
    out = capsys.readouterr().out
    assert "PRODUCE transactional" in out
    assert f"{txn_id}: {TRANSACTIONS} transactions" in out


def test_a_cut_last_line_is_skipped_and_a_cut_line_before_it_is_an_error(
    logged: tuple[Path, Path, str], tmp_path: Path
) -> None:
    path, _, _ = logged
    lines = path.read_bytes().splitlines(keepends=True)
    cut = tmp_path / "cut.log"
    cut.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    assert len(requests_of(cut)) == len(requests_of(path)) - 1
    cut.write_bytes(lines[0][: len(lines[0]) // 2] + b"\n" + b"".join(lines[1:]))
    with pytest.raises(RequestLogError, match="not JSON"):
        requests_of(cut)


def test_a_log_without_nanoseconds_is_refused(
    logged: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = logged
    first = path.read_bytes().splitlines(keepends=True)[0]
    stamp, _, rest = first.partition(b" ")
    millis = tmp_path / "millis.log"
    millis.write_bytes(stamp[:-6] + b" " + rest)  # HH:MM:SS.mmm
    assert request_log.main([str(millis)]) == 2
    assert "nanoseconds" in capsys.readouterr().err
