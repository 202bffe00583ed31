"""What agents/kafka/aiokafka_private.py relies on in the pinned aiokafka: the worker's
pause before a new transaction asks again for its first partition, and the fetcher's
bare records.

aiokafka keeps that pause in a module constant; its handler of AddPartitionsToTxn must
answer a CONCURRENT_TRANSACTIONS for a transaction's first partition with the pause set.
The fetcher's records are decoded from a record batch built by aiokafka's own builder,
the bytes a broker's fetch response carries.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from aiokafka.consumer.fetcher import PartitionRecords
from aiokafka.errors import ConcurrentTransactions
from aiokafka.producer import sender
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import ConsumerRecord

from arbstream.agents.errors import AgentError
from arbstream.agents.kafka import aiokafka_private


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    before = sender.BACKOFF_OVERRIDE
    yield
    sender.BACKOFF_OVERRIDE = before


def _retry_after_concurrent_transactions(partitions_already_added: set[TopicPartition]) -> float:
    """What aiokafka's handler waits before asking again, for one refused partition."""
    txn_manager = SimpleNamespace(txn_partitions=partitions_already_added)
    fake_sender = SimpleNamespace(_retry_backoff=0.1, _txn_manager=txn_manager)
    handler = sender.AddPartitionsToTxnHandler(fake_sender, [TopicPartition("t", 0)])
    response = SimpleNamespace(errors=[("t", [(0, ConcurrentTransactions.errno)])])
    return float(handler.handle_response(response))


def test_first_partition_of_a_transaction_is_retried_after_our_pause() -> None:
    assert _retry_after_concurrent_transactions(set()) == pytest.approx(0.02)  # aiokafka's
    aiokafka_private.shorten_first_partition_retry()
    assert _retry_after_concurrent_transactions(set()) == aiokafka_private.FIRST_PARTITION_RETRY_S
    # Later partitions keep the producer's retry_backoff_ms: only the pause on every
    # transaction's path changes.
    added = {TopicPartition("t", 1)}
    assert _retry_after_concurrent_transactions(added) == pytest.approx(0.1)


def test_an_aiokafka_without_the_constant_stops_the_worker_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(sender, "BACKOFF_OVERRIDE")
    with pytest.raises(AgentError, match=r"BACKOFF_OVERRIDE.*constraints\.txt"):
        aiokafka_private.shorten_first_partition_retry()


def _fetched(value_deserializer: object, values: list[bytes], first_offset: int = 0) -> list:
    """The records a consumer with ``value_deserializer`` is handed for one fetched
    batch of ``values`` (offsets 0..), from ``first_offset`` on."""
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=0, producer_id=-1, producer_epoch=-1,
        base_sequence=-1, batch_size=1 << 20,
    )  # fmt: skip
    for offset, value in enumerate(values):
        builder.append(offset, timestamp=1_000 + offset, key=b"XAG", value=value, headers=[])
    records = MemoryRecords(bytes(builder.build()))
    tp = TopicPartition("ticks", 3)
    return list(PartitionRecords(tp, records, [], first_offset, None, value_deserializer, False, 0))


def test_a_consumer_with_bare_records_gets_the_decoded_records_as_they_are() -> None:
    values = [b'{"n":%d}' % n for n in range(5)]
    bare = _fetched(aiokafka_private.bare_records, values, first_offset=2)
    assert [(r.offset, r.timestamp, r.key, r.value) for r in bare] == [
        (n, 1_000 + n, b"XAG", values[n]) for n in range(2, 5)
    ]
    assert not any(isinstance(r, ConsumerRecord) for r in bare)
    # every other consumer keeps aiokafka's records, its deserializer applied
    others = _fetched(bytes.upper, values, first_offset=2)
    assert all(isinstance(r, ConsumerRecord) for r in others)
    assert [(r.topic, r.partition, r.offset, r.value) for r in others] == [
        ("ticks", 3, n, values[n].upper()) for n in range(2, 5)
    ]
    assert aiokafka_private.bare_records(b"x") == b"x"
