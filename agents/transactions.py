"""Exactly-once on Faust: send through the source partition's transaction, and commit
exactly the offsets whose outputs that transaction holds.

faust-streaming 0.15 (``processing_guarantee="exactly_once"``) keeps one transactional
aiokafka producer per assigned source partition, with transactional id
``<app id>-<topic group>-<partition>``, and commits each one with the consumed offsets
of its partition. Two things in it do not fit an agent that batches:

* ``Topic.send`` picks the transaction from the *destination* partition
  (``TransactionManager.send``). For output topics the app does not consume that is a
  KeyError, or the non-transactional producer when the consumer has no metadata for
  the topic: outputs outside any transaction. So outputs go through the *source*
  partition's producer here, under the lock Faust holds while it commits it.
* The commit's offsets are those of acknowledged events, and they are not what the
  transaction holds. They are computed *before* the commit takes the partition's lock,
  while the agent may still be sending a batch's outputs: the commit would seal outputs
  whose offsets it does not carry (a crash then replays them: duplicates, and state
  ahead of the offsets). And ``Stream.take_events`` acknowledges a whole batch when the
  agent is cancelled in the middle of it (its ``finally``), so at a stop or rebalance
  offsets of events never processed would be committed: lost outputs.
  :meth:`PartitionTransactions.commit_transactions` replaces the producer's method and
  commits, under each partition's lock, the ticks offsets of exactly the events whose
  outputs were sent, and ignores Faust's for the ticks topic.

Both use the aiokafka driver's ``_transaction_producers`` and ``_trn_locks``, private
to faust-streaming; the worker tests pin the behaviour (kill -9, scale-out).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.types import TP

from agents.errors import AgentError

#: A partition's transaction: (lock, aiokafka transactional producer).
Transaction = tuple[Any, Any]


class PartitionTransactions:
    """The transactions of the assigned ticks partitions, and what each holds."""

    def __init__(self, app: Any, ticks_topic: str) -> None:
        self._app = app
        self._ticks = ticks_topic
        # transactional id -> {topic partition: next offset}, for events whose outputs
        # are in the open transaction but not yet committed
        self._sent: dict[str, dict[Any, int]] = {}

    def install(self) -> None:
        """Take over the Faust producer's commit (call before the worker starts)."""
        self._app.producer.commit_transactions = self.commit_transactions

    def transactional_id(self, partition: int) -> str:
        group = self._app.assignor.group_for_topic(self._ticks)
        return f"{self._app.conf.id}-{group}-{partition}"

    def get(self, tid: str) -> Transaction | None:
        """The partition's lock and producer; None once the partition is revoked."""
        producer = self._app.producer
        lock = producer._trn_locks.get(tid)
        transaction = producer._transaction_producers.get(tid)
        return None if lock is None or transaction is None else (lock, transaction)

    async def open(self, tid: str, partition: int) -> Transaction | None:
        """The partition's transaction; None when the partition is no longer assigned
        here (its events then go to the new owner, nothing of them committed here).

        Faust keeps a producer it could not begin again after a rebalance, fenced by the
        worker that owned the partition meanwhile; it is replaced here, which is safe
        while nothing sent through it waits for a commit.
        """
        if TP(self._ticks, partition) not in self._app.consumer.assignment():
            return None
        transaction = self.get(tid)
        if transaction is not None and transaction[1]._txn_manager.is_fatal_error():
            if self._sent.get(tid):
                error = AgentError(f"transaction {tid} failed with outputs not committed")
                await self._app.crash(error)  # restart from the committed state
                raise error
            self._app.producer._transaction_producers.pop(tid, None)
            await transaction[1].stop()
            transaction = None
        if transaction is None:
            await self._app.producer.begin_transaction(tid)  # creates, starts, begins
            transaction = self.get(tid)
            if transaction is None:
                raise AgentError(f"cannot start transaction {tid}")
        return transaction

    @staticmethod
    async def ensure_open(producer: Any) -> None:
        """Begin a transaction if none is open (call under the partition's lock).

        Faust ends every transaction without beginning a new one when partitions are
        revoked, and after the rebalance begins them again only under the transactional
        ids of the new topic groups, which need not be the same. Whatever is sent here
        is committed by the next commit, or aborted if the partition has moved.
        """
        if not producer._txn_manager.is_in_transaction():
            await producer.begin_transaction()

    def keep(self, partitions: set[int]) -> None:
        """After a rebalance: forget what was sent for partitions now owned elsewhere.
        Their open transactions abort (the new owner's producer fences them), and their
        engines are rebuilt from committed state if they come back."""
        for tid, offsets in list(self._sent.items()):
            if not any(tp.partition in partitions for tp in offsets):
                del self._sent[tid]

    def sent(self, tid: str, tp: Any, next_offset: int) -> None:
        """Record (under the partition's lock) that the outputs of every event before
        ``next_offset`` are in the open transaction."""
        self._sent.setdefault(tid, {})[tp] = next_offset

    async def commit_transactions(
        self,
        tid_to_offset_map: Mapping[str, Mapping[Any, int]],
        group_id: str,
        start_new_transaction: bool = True,
    ) -> None:
        """Faust's commit, with each transaction's offsets read under its lock."""
        for tid in sorted(set(tid_to_offset_map) | set(self._sent)):
            transaction = self.get(tid)
            if transaction is None:
                self._sent.pop(tid, None)  # revoked: its open transaction aborts
                continue
            lock, producer = transaction
            async with lock:
                if not producer._txn_manager.is_in_transaction():
                    continue  # ended at a rebalance, nothing sent since
                offsets = {
                    tp: offset
                    for tp, offset in tid_to_offset_map.get(tid, {}).items()
                    if tp.topic != self._ticks
                }
                offsets.update(self._sent.pop(tid, {}))
                if not offsets:
                    continue
                await producer.send_offsets_to_transaction(offsets, group_id)
                await producer.commit_transaction()
                if start_new_transaction:
                    await producer.begin_transaction()
