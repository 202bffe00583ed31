"""The worker's heap between rebalances: what was built to serve the partitions is kept
out of the garbage collector's sight, so that its full collections do not stop a batch.

A worker's long-lived objects (modules, clients, engines and their state) are almost all
it holds, and a full collection walks every one of them: in the latency benchmark each
worker made two, of 20-41 ms each, one of them mid-run (2026-12-08), where a batch's
engine phase is 2 ms at the median. ``gc.freeze()`` moves every object the collector
tracks to a permanent generation that no collection walks (the gc module documents it
for servers that fork; the property is the same here), so once the heap is built the
collector walks only what came after. Objects frozen and later dropped are still freed
by reference counting; a cycle among them would not be, so each assignment first thaws
and collects what the last one froze (a rebalance replaces every engine), then freezes
anew.
"""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Collect everything, then freeze what survives (see the module docstring). Costs
    one full collection: call it where the worker waits anyway (partitions paused)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
