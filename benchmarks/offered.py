"""Offered load and its timing, one way for the latency benchmarks (pipeline_bench,
latency_floor): records sent in 10 ms slices at a rate, their outputs timed by a
subscriber, from a measuring process that does not pause on its own.

That process once held every delivery future to the end of a run, and its own full
collections grew to 80 ms, six a run, each delaying the sends and receipts around it
(2026-11-30): settled futures are dropped as the run goes (``settled``), and the
collector is off while it measures (``collector_off``; reference counting frees the
rest).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

#: Sends are paced in this many slices a second.
SLICES_PER_S = 100
#: The first seconds of a run are sent and not timed: a run's first sends meet clients,
#: topics and a broker that have not yet carried this load, and in the latency floor
#: they took 65-650 ms where the rest took 5-30 (2026-12-08).
WARM_UP_S = 1.0


async def paced(rate: int, seconds: float) -> AsyncIterator[int]:
    """Yield, once per slice, how many records to send in it; wait for the next slice's
    start after each (a slice that ran late is followed at once)."""
    per_slice = max(1, rate // SLICES_PER_S)
    start = time.time()
    for i in range(int(seconds * SLICES_PER_S)):
        yield per_slice
        delay = start + (i + 1) / SLICES_PER_S - time.time()
        if delay > 0:
            await asyncio.sleep(delay)


def settled(pending: list[asyncio.Future[object]]) -> list[asyncio.Future[object]]:
    """The deliveries still in flight; one that failed fails the benchmark."""
    waiting = []
    for future in pending:
        if future.done():
            future.result()
        else:
            waiting.append(future)
    return waiting


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """Collect, then keep the garbage collector off (and what is alive now out of its
    sight) until the block ends."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def tick_ts(value: bytes) -> int:
    """What an output and its tick share: the tick's ``ts`` (the worker's outputs, and
    the latency floor's outputs of ``--value-bytes N``)."""
    ts: int = orjson.loads(value)["ts"]
    return ts


async def time_receipts(
    consumer: AIOKafkaConsumer,
    sent_at: dict[Any, float],
    key_of: Callable[[bytes], Hashable],
    latencies: list[float],
    stop: asyncio.Event,
) -> None:
    """Until ``stop``: for every record read whose ``key_of(value)`` was sent at a known
    time, append the seconds from that send to its receipt."""
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=100)
        now = time.time()
        for messages in batches.values():
            for m in messages:
                t_sent = sent_at.get(key_of(m.value))
                if t_sent is not None:
                    latencies.append(now - t_sent)
