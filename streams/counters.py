"""What an engine has counted: accepted quotes and FX, rejections, signals, level crosses.

The worker exports these as Prometheus counters. They live outside the engine's state
(they are not restored from the changelog). A worker drains an engine's counts into its
totals after each committed transaction (``drain_into``), so work that is aborted and
redone is counted once, and the totals are keyed by label values: an instrument or FX
pair the config does not list is folded into ``OTHER`` there, so junk on the ticks topic
grows neither the label sets nor the totals.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Final

#: The label value of every instrument (and FX pair) the config does not list.
OTHER: Final = "other"


class EngineCounters:
    """Running counts; the engine adds to them as it processes records."""

    __slots__ = ("crosses", "fx", "quotes", "rejected", "signals")

    def __init__(self) -> None:
        self.quotes: dict[tuple[str, str], int] = {}  # (venue, instrument) -> accepted
        self.fx: dict[str, int] = {}  # pair -> accepted
        self.rejected: dict[str, int] = {}  # reason -> records sent to the dlq
        self.signals: dict[tuple[str, str], int] = {}  # (kind, event) -> published
        #: (instrument, level name, direction) -> crosses (levels are the config's: bounded)
        self.crosses: dict[tuple[str, str, str], int] = {}

    def drain_into(
        self, totals: EngineCounters, instruments: Container[str], fx_pairs: Container[str]
    ) -> None:
        """Add these counts to ``totals`` (instruments and pairs not listed become
        ``OTHER``) and start again from zero."""
        for (venue, instrument), n in self.quotes.items():
            key = (venue, instrument if instrument in instruments else OTHER)
            totals.quotes[key] = totals.quotes.get(key, 0) + n
        for pair, n in self.fx.items():
            label = pair if pair in fx_pairs else OTHER
            totals.fx[label] = totals.fx.get(label, 0) + n
        for reason, n in self.rejected.items():
            totals.rejected[reason] = totals.rejected.get(reason, 0) + n
        for signal, n in self.signals.items():
            totals.signals[signal] = totals.signals.get(signal, 0) + n
        for cross, n in self.crosses.items():
            totals.crosses[cross] = totals.crosses.get(cross, 0) + n
        self.quotes, self.fx, self.rejected, self.signals = {}, {}, {}, {}
        self.crosses = {}
