"""A mend of faust-streaming's fetch across a rebalance, so that a table's recovery never
waits for changelog records its consumer fetched and dropped.

Faust's consumer thread asks aiokafka for records of the *active* partitions (a live set
that Faust changes as it pauses and resumes them) and waits up to a second for some. Two
things go wrong when a rebalance happens during that wait (faust-streaming 0.15.3):

1. The revocation pauses every partition, and an empty set means *every* partition to
   aiokafka (``Fetcher.fetched_records`` filters only by a non-empty one).
2. The records come back after Faust has stopped the flow; Faust drops them and seeks
   its partitions to their committed offsets. A changelog partition has no committed
   offset, so it stays past the dropped records.

Together: a worker takes over partitions, Faust seeks their changelogs to 0 to rebuild
the tables, the waiting fetch drains those changelogs while the flow is stopped, and the
records are lost. Recovery then waits for them for ever and the ticks are never resumed
(the Faust runtime's two-worker test hung this way about one run in three).

The mend, in the consumer thread: the set passed to aiokafka is never empty (an empty
live set selects nothing), and records drained while the flow is stopped are put back
(each partition sought to the first offset returned, before any other seek can run on
that thread) instead of returned. tests/agents/test_faust_fetch.py shows both on a
broker.

What it does not cover, and need not: Faust still drops the rest of a batch when the
flow stops while it hands the batch out, or when the flow stops between this check and
Faust's own. Those records were drained before the rebalance's recovery seeks the
changelogs, so recovery reads them again. A seek made from the main thread (the Faust
runtime's ``seek_again``) can race with a put-back; the runtime pauses and seeks such a
partition again (agents/faust_app.py, ``SEEK_AGAIN_AFTER_S``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger(__name__)


class _Seekable(Protocol):
    def seek(self, partition: Any, offset: int) -> None: ...


class LivePartitions:
    """Faust's live set of active partitions, as aiokafka's filter: never empty to
    ``bool`` (aiokafka reads an empty filter as "every partition"); membership is the
    live set's, as Faust meant it."""

    def __init__(self, live: Iterable[Any]) -> None:
        self._live = live

    def __bool__(self) -> bool:
        return True

    def __contains__(self, tp: object) -> bool:
        return tp in self._live


Fetch = Callable[[Any], Awaitable[Mapping[Any, Sequence[Any]]]]


async def fetch_guarded(
    fetch: Fetch,
    consumer: _Seekable,
    active_partitions: Iterable[Any] | None,
    flow_active: Callable[[], bool],
) -> Mapping[Any, Sequence[Any]]:
    """``fetch(partitions)``'s records, or none (and each partition's position put back
    to its first record) if the flow stopped while it waited."""
    partitions = None if active_partitions is None else LivePartitions(active_partitions)
    records = await fetch(partitions)
    if records and not flow_active():
        # No await between the drain and the seeks: no other seek on this thread comes
        # in between (a seek from the main thread can; see the module's docstring).
        for tp, batch in records.items():
            consumer.seek(tp, batch[0].offset)
        log.info(
            "a rebalance stopped the flow during a fetch: %d records of %d partitions "
            "put back", sum(len(batch) for batch in records.values()), len(records),
        )  # fmt: skip
        return {}
    return records


class GuardedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread, fetching through ``fetch_guarded``."""

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        parent = super()._fetch_records

        async def fetch(partitions: Any) -> Any:
            return await parent(consumer, partitions, timeout=timeout, max_records=max_records)

        return await fetch_guarded(
            fetch, consumer, active_partitions, lambda: bool(self.consumer.flow_active)
        )


class GuardedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return GuardedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class GuardedTransport(faust_aiokafka.Transport):
    """Faust's ``kafka://`` transport with the mended consumer."""

    Consumer = GuardedConsumer
