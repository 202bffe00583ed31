"""Duplicate and sequence checks per stream (venue + instrument, or fx pair); pure.

After a reconnect a venue may resend what the feed already has (a snapshot of the
book, or frames replayed from a buffer). Forwarding those would add spread samples the
venue never meant, so the guard drops a record identical to the stream's last one and,
where the protocol numbers its frames (Binance ``u``, native ``seq``), a record whose
number does not advance. A number that goes back while event time moves forward means
the venue restarted its numbering: the guard accepts it and starts over from there.
In "contiguous" mode a number that skips ahead counts as a gap (records were lost).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal


class Verdict(Enum):
    ACCEPT = "accept"
    GAP = "gap"  # accepted, but numbers were skipped
    RESTART = "restart"  # accepted: the numbering started over
    DUPLICATE = "duplicate"  # dropped


@dataclass(slots=True)
class _Last:
    ts: Any
    value: tuple[Any, ...]  # what a repeat repeats: bid and ask, or a status
    seq: int | None


class StreamGuard:
    """Remembers the last record of every stream one feed produces (O(streams))."""

    def __init__(self, sequence: Literal["contiguous", "increasing"] = "increasing") -> None:
        self._contiguous = sequence == "contiguous"
        self._last: dict[tuple[Any, ...], _Last] = {}

    def check(self, record: dict[str, Any]) -> Verdict:
        kind = record.get("type")
        seq = record.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            seq = None
        if kind == "fx":
            stream: tuple[Any, ...] = ("fx", record.get("pair"))
        elif kind == "status" and seq is None:
            # a venue's status beside its numbered quotes (Binance): a stream of its own
            stream = ("status", record.get("venue"), record.get("instrument"))
        else:
            stream = (record.get("venue"), record.get("instrument"))
        ts = record.get("ts")
        value = (record.get("bid"), record.get("ask"), record.get("status"))
        last = self._last.get(stream)
        verdict = Verdict.ACCEPT
        if last is not None:
            if last.ts == ts and last.value == value and last.seq == seq:
                return Verdict.DUPLICATE
            if seq is not None and last.seq is not None:
                if seq <= last.seq:
                    if not _later(ts, last.ts):
                        return Verdict.DUPLICATE
                    verdict = Verdict.RESTART
                elif self._contiguous and seq > last.seq + 1:
                    verdict = Verdict.GAP
        self._last[stream] = _Last(ts, value, seq)
        return verdict


def _later(ts: Any, than: Any) -> bool:
    return isinstance(ts, int) and isinstance(than, int) and ts > than
