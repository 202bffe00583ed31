"""How an input record travels to Kafka (docs/records.md): the one rule that ``arbstream
produce`` and the feed process's Kafka sink both follow.

A quote or a stock record goes to the ticks topic keyed by its instrument, so one
partition sees every venue of an instrument, in the order written. An fx record goes to
*every* ticks partition (each worker applies FX in its place among its quotes) and once
to the fx topic for subscribers, keyed by its pair. Anything else goes to the ticks
topic without a key, for a worker to reject into the dlq with its offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from agents.kafka.topics import Topics
from streams.validation import decode

Kind = Literal["quote", "stock", "fx", "other"]
#: Where one record goes: (topic, partition), where partition None means "the partition
#: Kafka's default partitioner gives the key" (or any, for a record without a key).
Destination = tuple[str, int | None]


def route(line: bytes) -> tuple[Kind, bytes | None]:
    """What a raw line is, and its key: (``"quote"`` | ``"stock"`` | ``"fx"`` |
    ``"other"``, key)."""
    try:
        obj = decode(line)
    except ValueError:
        return "other", None
    if type(obj) is dict:
        kind = obj.get("type")
        if kind in ("quote", "stock"):
            instrument = obj.get("instrument")
            if type(instrument) is str and instrument:
                return kind, instrument.encode()
        elif kind == "fx":
            pair = obj.get("pair")
            return "fx", pair.encode() if type(pair) is str and pair else None
    return "other", None


def destinations(kind: Kind, topics: Topics, ticks_partitions: Sequence[int]) -> list[Destination]:
    """The (topic, partition) of every copy of a record of ``kind``."""
    if kind == "fx":
        return [*((topics.ticks, p) for p in ticks_partitions), (topics.fx, None)]
    return [(topics.ticks, None)]
