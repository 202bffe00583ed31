"""What an engine has counted: accepted quotes and FX, rejections, signals.

The worker exports these as Prometheus counters. They live outside the engine's state
(they are not restored from the changelog) and can be shared by several engines, so a
worker's totals survive the engine rebuilds of a rebalance. Keys are raw input values;
bounding label sets is the exporter's job (agents/metrics.py).
"""

from __future__ import annotations


class EngineCounters:
    """Running totals; the engine adds to them as it processes records."""

    __slots__ = ("fx", "quotes", "rejected", "signals")

    def __init__(self) -> None:
        self.quotes: dict[tuple[str, str], int] = {}  # (venue, instrument) -> accepted
        self.fx: dict[str, int] = {}  # pair -> accepted
        self.rejected: dict[str, int] = {}  # reason -> records sent to the dlq
        self.signals: dict[tuple[str, str], int] = {}  # (kind, event) -> published
