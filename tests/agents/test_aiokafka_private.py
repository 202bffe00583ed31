"""What agents/kafka/aiokafka_private.py relies on in the pinned aiokafka: the worker's
pause before a new transaction asks again for its first partition.

aiokafka keeps that pause in a module constant; its handler of AddPartitionsToTxn must
answer a CONCURRENT_TRANSACTIONS for a transaction's first partition with the pause set.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import ConcurrentTransactions
from aiokafka.producer import sender

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
