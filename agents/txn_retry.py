"""The pause before a transaction retries adding its first partition.

After a commit, the broker writes the transaction's markers to every partition it
touched and only then lets the same producer add partitions to a new transaction;
until then it answers CONCURRENT_TRANSACTIONS. aiokafka retries that answer, for the
first partition of a transaction, after the module constant
``aiokafka.producer.sender.BACKOFF_OVERRIDE`` (20 ms; its comment: "better than
100ms"). A worker commits a transaction per batch and starts the next at once, so this
pause is on the path of every tick that arrives during a commit. On this project's
2-core machine (benchmarks/pipeline_bench.py, 2026-11-29) the markers take 1-3 ms, and
the 20 ms pause put the tick-to-output p99 at 51 ms at 1,000 ticks/s; at 2 ms it was
18 ms, with the same throughput.

aiokafka has no parameter for it (``retry_backoff_ms`` covers the other retries, and
lowering it would also hurry metadata and produce retries against a broker that is
away), so the worker sets the constant, once, at start. The constant is checked, not
assumed: an aiokafka release without it fails the worker's start with a clear error
(tests/agents/test_txn_retry.py), and constraints.txt pins the version tested.
"""

from __future__ import annotations

from aiokafka.producer import sender

from agents.errors import AgentError

#: Seconds between retries while the previous transaction's markers are written.
FIRST_PARTITION_RETRY_S = 0.002


def shorten_first_partition_retry(seconds: float | None = None) -> None:
    """Make a new transaction ask again for its first partition after ``seconds``
    (default :data:`FIRST_PARTITION_RETRY_S`, read when called)."""
    current = getattr(sender, "BACKOFF_OVERRIDE", None)
    if not isinstance(current, float):
        raise AgentError(
            "aiokafka.producer.sender.BACKOFF_OVERRIDE is gone or not a float in this "
            "aiokafka release: install the version in constraints.txt"
        )
    sender.BACKOFF_OVERRIDE = FIRST_PARTITION_RETRY_S if seconds is None else seconds
