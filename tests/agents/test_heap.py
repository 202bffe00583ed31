"""The worker's heap settled at each assignment (agents/heap.py): collected, then frozen."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from arbstream.agents.heap import settle_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test session keeps the collector as it found it


def _cycle() -> Node:
    node = Node()
    node.other = node
    return node


def test_settling_collects_cyclic_garbage_and_hides_the_survivors_from_the_collector() -> None:
    kept = _cycle()
    garbage = _cycle()
    dead = weakref.ref(garbage)
    del garbage
    settle_heap()
    assert dead() is None  # collected before the freeze, not frozen with the rest
    assert gc.get_freeze_count() > 0
    assert all(obj is not kept for obj in gc.get_objects())  # no collection walks it


def test_what_one_assignment_froze_and_the_next_dropped_is_collected_at_the_next() -> None:
    engine = _cycle()  # an engine of the first assignment, in a reference cycle
    dropped = weakref.ref(engine)
    settle_heap()
    del engine  # the rebalance replaced it: a frozen cycle nothing refers to
    gc.collect()
    assert dropped() is not None  # frozen: a plain collection cannot reach it
    settle_heap()
    assert dropped() is None
