"""Where records go in Kafka (docs/records.md): an input record (the one rule that
``arbstream produce`` and the feed process's Kafka sink both follow), and an engine's
output (the one rule of both runtimes, :class:`OutputPlacement`).

A quote, stock or status record goes to the ticks topic keyed by its instrument, so one
partition sees every venue of an instrument, in the order written. An fx record goes to
*every* ticks partition (each worker applies FX in its place among its quotes) and once
to the fx topic for subscribers, keyed by its pair. Anything else goes to the ticks
topic without a key, for a worker to reject into the dlq with its offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from arbstream.agents.kafka.topics import Topics
from arbstream.agents.outputs import KeyPlacement
from arbstream.streams.validation import decode

Kind = Literal["quote", "stock", "status", "fx", "other"]
#: Where one input record goes: (topic, partition), where partition None means "the
#: partition Kafka's default partitioner gives the key" (or any, for a record without a
#: key).
InputDestination = tuple[str, int | None]


def route(line: bytes) -> tuple[Kind, bytes | None]:
    """What a raw line is, and its key: (``"quote"`` | ``"stock"`` | ``"status"`` |
    ``"fx"`` | ``"other"``, key)."""
    try:
        obj = decode(line)
    except ValueError:
        return "other", None
    if type(obj) is dict:
        kind = obj.get("type")
        if kind in ("quote", "stock", "status"):
            instrument = obj.get("instrument")
            if type(instrument) is str and instrument:
                return kind, instrument.encode()
        elif kind == "fx":
            pair = obj.get("pair")
            return "fx", pair.encode() if type(pair) is str and pair else None
    return "other", None


def destinations(
    kind: Kind, topics: Topics, ticks_partitions: Sequence[int]
) -> list[InputDestination]:
    """The (topic, partition) of every copy of a record of ``kind``."""
    if kind == "fx":
        return [*((topics.ticks, p) for p in ticks_partitions), (topics.fx, None)]
    return [(topics.ticks, None)]


class OutputPlacement:
    """Where each output of a ticks partition's engine goes: a keyed record to its
    stream's topic, at the partition Kafka's default partitioner gives its key (as any
    Kafka producer would place it); a rejected input (no key) to the dlq partition
    numbered as its ticks partition, modulo the dlq's partition count."""

    def __init__(self, topics: Topics, partition_counts: dict[str, int]) -> None:
        self.topic_of = {
            "spreads": topics.spreads,
            "signals": topics.signals,
            "basis": topics.basis,
        }
        self._dlq = topics.dlq
        self._dlq_partitions = partition_counts[topics.dlq]
        #: The partition of each (topic, key), remembered.
        self.keys = KeyPlacement(partition_counts)

    def __call__(self, stream: str, key: bytes | None, ticks_partition: int) -> tuple[str, int]:
        """(topic, partition) of an output of ``stream`` keyed ``key``, made by the engine
        of ``ticks_partition``."""
        if key is None:
            return self._dlq, ticks_partition % self._dlq_partitions
        topic = self.topic_of[stream]
        return topic, self.keys(topic, key)
