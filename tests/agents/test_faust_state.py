"""The Faust runtime's state in its table (agents/faust_state.py): whatever prefix of a
batch's changelog records survives a crash, the state read back is the state before the
batch or after it, never a mix.

A table here is what Faust's memory store holds after recovery: the changelog applied in
order, latest value per key, a None value deleting its key. The changelog is recorded as
it is sent, so every prefix can be recovered."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from arbstream.agents.faust_state import SlottedState


class RecordedTable:
    """``data`` and ``send_changelog`` of a Faust table, with the changelog kept."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog: list[tuple[int | None, bytes, bytes | None]] = []

    def send_changelog(
        self, partition: int | None, key: bytes, value: bytes | None
    ) -> asyncio.Future[Any]:
        self.changelog.append((partition, key, value))
        return asyncio.Future(loop=asyncio.new_event_loop())

    def recovered(self, records: int) -> RecordedTable:
        """A table recovered from the first ``records`` changelog records."""
        table = RecordedTable()
        for _, key, value in self.changelog[:records]:
            if value is None:
                table.data.pop(key, None)
            else:
                table.data[key] = value
        return table


def test_every_prefix_of_a_batch_reads_back_as_the_state_before_or_after_it() -> None:
    rng = random.Random(3)
    table = RecordedTable()
    state = SlottedState(table)
    part = state.load(2)
    assert (part.entries, part.offset) == ({}, 0)
    truth: dict[str, bytes] = {}
    committed = [(0, dict(truth))]  # (offset, entries) after each batch
    ends = [0]  # changelog length after each batch
    offset = 0
    names = [f"w/XAG/A|B/{i}" for i in range(6)] + ["i/XAG", "fx", "meta"]
    for _ in range(60):
        changes: list[tuple[str, bytes | None]] = []
        for name in rng.sample(names, rng.randint(1, 4)):
            if name in truth and rng.random() < 0.3:
                changes.append((name, None))  # deleted (a chunk every window has left)
                del truth[name]
            else:
                value = rng.randbytes(rng.randint(0, 12))
                changes.append((name, value))
                truth[name] = value
        offset += rng.randint(1, 50)
        state.write(part, changes, offset)
        state.commit(part, offset)
        committed.append((offset, dict(truth)))
        ends.append(len(table.changelog))

    for batch in range(1, len(ends)):
        for records in range(ends[batch - 1], ends[batch] + 1):
            read = SlottedState(table.recovered(records)).load(2)
            before, after = committed[batch - 1], committed[batch]
            complete = records == ends[batch]
            expected = after if complete else before
            assert (read.offset, read.entries) == expected, (batch, records)


def test_a_resumed_writer_continues_from_what_it_read() -> None:
    """After a crash mid-batch, a new owner reads the state, redoes the batch (maybe in
    other slices) and goes on: what it writes reads back right, and stale slots of the
    lost batch never win later."""
    table = RecordedTable()
    writer = SlottedState(table)
    part = writer.load(0)
    writer.write(part, [("i/XAG", b"one"), ("w/XAG/A|B/0", b"a")], 10)
    writer.commit(part, 10)
    writer.write(part, [("i/XAG", b"two"), ("w/XAG/A|B/0", b"b")], 20)
    writer.commit(part, 20)
    lost = len(table.changelog)
    writer.write(part, [("i/XAG", b"three"), ("w/XAG/A|B/0", None)], 30)
    writer.commit(part, 30)
    # a crash after the batch's first record: its offset never arrived
    crashed = table.recovered(lost + 1)
    resumed = SlottedState(crashed)
    part = resumed.load(0)
    assert (part.offset, part.entries) == (20, {"i/XAG": b"two", "w/XAG/A|B/0": b"b"})
    resumed.write(part, [("i/XAG", b"three-bis")], 25)  # redone in two slices
    resumed.commit(part, 25)
    resumed.write(part, [("w/XAG/A|B/0", None)], 30)
    resumed.commit(part, 30)
    resumed.write(part, [("fx", b"x")], 40)  # the deletion's slots are dropped now
    resumed.commit(part, 40)
    final = SlottedState(crashed).load(0)
    assert (final.offset, final.entries) == (40, {"i/XAG": b"three-bis", "fx": b"x"})
    assert not any(b"w/XAG" in key for key in crashed.data)  # both slots tombstoned
