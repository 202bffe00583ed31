"""Retry delays: a pure generator, shared by everything that waits for a venue or a
broker to come back (feed connections, the feed sink, the worker's partition rebuilds).

Exponential with "full jitter" (each delay uniform in [0, min(cap, base * 2**n)]): many
clients dropped by one network blip do not retry in lockstep, and the cap keeps a
client from sleeping long after the other side is back.
"""

from __future__ import annotations

import random
from collections.abc import Iterator


def backoff(cap_s: float, base_s: float = 0.1, rng: random.Random | None = None) -> Iterator[float]:
    """Endless delays in seconds; the n-th is uniform in [0, min(cap, base * 2**n)]."""
    rng = rng or random.Random()
    ceiling = base_s
    while True:
        yield rng.uniform(0.0, min(cap_s, ceiling))
        ceiling = min(cap_s, ceiling * 2)
