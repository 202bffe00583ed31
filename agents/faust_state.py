"""The engines' state in a Faust table, written so that a crash can only repeat work.

Under the Faust runtime (agents/faust_app.py) a ticks partition's engine state is a set
of entries (streams/changelog.py) plus the offset of the next tick to process. After a
batch's outputs are acknowledged, its state changes and the new offset are written to
the table, whose changelog topic is co-partitioned with the ticks topic. Those writes
are several records, and a worker killed while sending them leaves a prefix of them in
the changelog: a state that mixes two batches. So no entry is ever overwritten in place:

* every entry has two slots, ``<p>/<entry>#0`` and ``#1``; a write goes to the slot that
  does not hold the entry's last committed version, stamped with the batch's offset;
* the partition's offset, ``<p>/offset``, is written last, once the batch's slots are
  acknowledged: it commits the batch;
* reading (``load``), each entry is the version with the highest stamp not beyond the
  committed offset, so the slots a batch wrote before its offset are ignored, and the
  previous versions, still in the other slots, are used;
* a deleted entry is a stamped deletion in its slot, and its two slots are removed
  (Kafka tombstones) in the next batch, after the deletion's offset is written.

A crash while the slots are sent leaves some of them, and no offset: the state before
the batch. Faust's producer is not idempotent, so a batch that expires in its buffer can
fail while later ones are delivered; waiting for the slots' acknowledgements before the
offset keeps that from ever mixing two batches.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable, MutableMapping
from typing import Any, Protocol

from arbstream.streams import changelog

#: A slot's value: the stamp (the offset the batch committed), a deletion flag, the entry.
_HEADER = struct.Struct(">qB")
_VALUE, _DELETED = 0, 1


class ChangelogTable(Protocol):
    """What this module needs of a Faust table (``faust.Table``'s public API)."""

    @property
    def data(self) -> MutableMapping[bytes, bytes]: ...

    def send_changelog(
        self, partition: int | None, key: bytes, value: bytes | None
    ) -> asyncio.Future[Any]: ...


class PartitionState:
    """The committed state of one ticks partition as the table holds it."""

    def __init__(
        self, partition: int, entries: dict[str, bytes], offset: int, slots: dict[str, int]
    ) -> None:
        self.partition = partition
        self.entries = entries  # what Engine.load takes
        self.offset = offset  # the next tick to process (0: nothing committed yet)
        self.slots = slots  # entry -> the slot of its committed version
        self.tombstones: list[str] = []  # entries deleted by the last committed batch


class SlottedState:
    """Reads and writes the engines' state in ``table`` (see the module docstring)."""

    def __init__(self, table: ChangelogTable) -> None:
        self._table = table

    def committed_offset(self, partition: int) -> int:
        """The next tick to process, as the table holds it (0 when nothing was written)."""
        value = self._table.data.get(_offset_key(partition))
        return 0 if value is None else int(value)

    def load(self, partition: int) -> PartitionState:
        """The committed state of ``partition``."""
        offset = self.committed_offset(partition)
        prefix = f"{partition}/".encode()
        best: dict[str, tuple[int, int, bytes | None]] = {}  # entry -> (stamp, slot, value)
        for key, raw in list(self._table.data.items()):
            if not key.startswith(prefix) or b"#" not in key:
                continue
            name, _, slot_text = key[len(prefix) :].decode().rpartition("#")
            stamp, flag = _HEADER.unpack_from(raw)
            if stamp > offset:
                continue  # written by a batch whose offset never was: not committed
            known = best.get(name)
            if known is None or stamp > known[0]:
                value = None if flag == _DELETED else raw[_HEADER.size :]
                best[name] = (stamp, int(slot_text), value)
        entries = {name: value for name, (_, _, value) in best.items() if value is not None}
        slots = {name: slot for name, (_, slot, _) in best.items()}
        state = PartitionState(partition, entries, offset, slots)
        # deletions that were committed but whose slots may not have been removed yet
        state.tombstones = [name for name, (_, _, value) in best.items() if value is None]
        return state

    def write(
        self, state: PartitionState, changes: Iterable[changelog.Entry], offset: int
    ) -> list[asyncio.Future[Any]]:
        """Write one batch's ``changes``, stamped with ``offset`` (the next tick to process
        after the batch); return the changelog records' delivery futures. ``commit``
        writes the offset, once they are all acknowledged.

        Call only once the batch's outputs are acknowledged."""
        p = state.partition
        sent: list[asyncio.Future[Any]] = []
        for name in state.tombstones:  # deleted by a committed batch: drop both slots,
            deleted = state.slots.pop(name)  # the old version first, then the deletion
            for slot in (1 - deleted, deleted):  # (else a crash between could revive it)
                sent.append(self._put(p, _slot_key(p, name, slot), None))
        state.tombstones = []
        for name, value in changes:
            slot = 1 - state.slots.get(name, 1)
            if value is None:
                raw = _HEADER.pack(offset, _DELETED)
                state.tombstones.append(name)
            else:
                raw = _HEADER.pack(offset, _VALUE) + value
            sent.append(self._put(p, _slot_key(p, name, slot), raw))
            state.slots[name] = slot
        return sent

    def commit(self, state: PartitionState, offset: int) -> asyncio.Future[Any]:
        """Write the partition's offset: the batch ``write`` wrote becomes the state.
        Call only once the records ``write`` returned are acknowledged."""
        state.offset = offset
        return self._put(state.partition, _offset_key(state.partition), str(offset).encode())

    def _put(self, partition: int, key: bytes, value: bytes | None) -> asyncio.Future[Any]:
        data = self._table.data
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
        return self._table.send_changelog(partition, key, value)


def _slot_key(partition: int, name: str, slot: int) -> bytes:
    return f"{partition}/{name}#{slot}".encode()


def _offset_key(partition: int) -> bytes:
    return f"{partition}/offset".encode()
