"""Reconnect delays: a pure generator, so the connection loop and its tests share it.

Exponential with "full jitter" (each delay uniform in [0, min(cap, base * 2**n)]): many
feeds dropped by one network blip do not reconnect in lockstep, and the cap keeps a
feed from sleeping long after its venue is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator


def backoff(cap_s: float, base_s: float = 0.1, rng: random.Random | None = None) -> Iterator[float]:
    """Endless delays in seconds; the n-th is uniform in [0, min(cap, base * 2**n)]."""
    rng = rng or random.Random()
    ceiling = base_s
    while True:
        yield rng.uniform(0.0, min(cap_s, ceiling))
        ceiling = min(cap_s, ceiling * 2)


async def sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, but wake at once when ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
