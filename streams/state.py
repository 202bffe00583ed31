"""The engine's state: per instrument, the latest quote of each venue, the pairs' spread
windows, the arbitrage routes and the venues quoting wide. How it is written as
key-value entries, and read back, is streams/changelog.py.
"""

from __future__ import annotations

from streams.signals import ArbRoute
from streams.windows import PairWindows


class VenueQuote:
    """The latest accepted quote of one venue for one instrument, as received, with its
    normalised (USD/oz) bid and ask cached against the FX book entry they used."""

    __slots__ = ("ask", "bid", "book", "factor", "fx_pair", "nask", "nbid", "stale_ms", "ts")

    def __init__(
        self, bid: float, ask: float, ts: int, factor: float, fx_pair: str | None, stale_ms: int
    ) -> None:
        self.bid = bid
        self.ask = ask
        self.ts = ts
        self.factor = factor  # 1 / (1 + vat) / oz_per_unit
        self.fx_pair = fx_pair  # None for USD
        self.stale_ms = stale_ms
        self.book: tuple[float, int] | None = None  # the FX entry nbid/nask were computed with
        self.nbid = self.nask = 0.0  # valid once normalised (USD, or FX seen)


class PairState:
    """Spread windows of one unordered venue pair, when it last emitted, and which of its
    samples are already in the state entries."""

    __slots__ = ("last_emit", "low_chunk", "saved", "windows")

    def __init__(self, windows: PairWindows, last_emit: int | None = None) -> None:
        self.windows = windows
        self.last_emit = last_emit
        self.saved = 0  # absolute index of the first sample not yet written out
        self.low_chunk = 0  # the lowest chunk number that may still be stored


class InstrumentState:
    """Everything the engine knows about one instrument."""

    __slots__ = ("clock", "pairs", "quotes", "routes", "wide_open")

    def __init__(self, n_routes: int) -> None:
        self.clock = -1
        self.quotes: dict[str, VenueQuote] = {}
        self.pairs: dict[tuple[str, str], PairState] = {}
        self.routes = [ArbRoute() for _ in range(n_routes)]
        self.wide_open: set[str] = set()
