"""The engine's state: per instrument, the latest quote of each venue, the pairs' spread
windows, the arbitrage routes, the venues quoting wide, the halted venues and the side
of each price level. How it is written as
key-value entries, and read back, is streams/changelog.py.
"""

from __future__ import annotations

from typing import Any

from arbstream.streams.sessions import Calendar
from arbstream.streams.signals import ArbRoute
from arbstream.streams.windows import PairWindows


class VenueQuote:
    """The latest accepted quote of one venue for one instrument, as received, with its
    normalised (USD/oz) bid and ask cached against the FX book entry they used."""

    __slots__ = (
        "ask",
        "bid",
        "book",
        "calendar",
        "factor",
        "fresh",
        "fx_pair",
        "fx_ts",
        "halted",
        "label",
        "nask",
        "nbid",
        "oz_per_lot",
        "record",
        "stale_ms",
        "ts",
    )

    def __init__(
        self,
        bid: float,
        ask: float,
        ts: int,
        factor: float,
        fx_pair: str | None,
        stale_ms: int,
        calendar: Calendar | None = None,
        oz_per_lot: float = 1.0,
    ) -> None:
        self.bid = bid
        self.ask = ask
        self.ts = ts
        self.factor = factor  # 1 / (1 + vat) / oz_per_unit
        self.fx_pair = fx_pair  # None for USD
        self.stale_ms = stale_ms
        self.calendar = calendar  # the venue's sessions; None: always open
        self.oz_per_lot = oz_per_lot
        # The key its accepted quotes are counted under, ``(venue, instrument)``, built
        # once (the engine sets it). ``Any`` keeps it one object in compiled code, where
        # a value typed as the tuple is boxed anew, hashed and freed at every use.
        self.label: Any = None
        # The decoded quote: its optional sizes are read only when a signal needs them
        # (streams.validation.size), which keeps them off the per-tick path.
        self.record: dict[str, object] = _NO_RECORD
        # The FX entry (an object of the engine's FX book) nbid/nask were computed with,
        # and its time; None until normalised.
        self.book: object = None
        self.fx_ts = 0
        self.nbid = self.nask = 0.0  # valid once normalised (USD, or FX seen)
        # Fresh at the instrument clock of the last evaluation (streams.freshness sets it
        # for every quote before each use; it is not state).
        self.fresh = False
        # The venue has stopped trading the instrument (a status record): never fresh.
        # Kept equal to ``InstrumentState.halted`` by the engine (not state of its own).
        self.halted = False

    @property
    def bid_size(self) -> object:
        return self.record.get("bid_size")

    @property
    def ask_size(self) -> object:
        return self.record.get("ask_size")


_NO_RECORD: dict[str, object] = {}


class PairState:
    """Spread windows of one unordered venue pair, when it last emitted, and which of its
    samples are already in the state entries."""

    __slots__ = ("last_emit", "low_chunk", "saved", "windows")

    def __init__(self, windows: PairWindows, last_emit: int | None = None) -> None:
        self.windows = windows
        self.last_emit = last_emit
        self.saved = 0  # absolute index of the first sample not yet written out
        self.low_chunk = 0  # the lowest chunk number that may still be stored


class BasisState:
    """One basis pair of one instrument: its last basis record and its backwardation
    signal."""

    __slots__ = ("last_emit", "open", "opened_ts")

    def __init__(self, last_emit: int | None = None, open: bool = False, opened_ts: int = 0):
        self.last_emit = last_emit
        self.open = open
        self.opened_ts = opened_ts


class InstrumentState:
    """Everything the engine knows about one instrument."""

    __slots__ = (
        "basis",
        "clock",
        "coverage",
        "delivery_open",
        "halted",
        "leg_ask",
        "leg_bid",
        "leg_seen",
        "level_sides",
        "live_routes",
        "pair_slots",
        "pairs",
        "quotes",
        "route_live",
        "routes",
        "seq",
        "slots",
        "status_ts",
        "stock_ts",
        "wide_open",
    )

    def __init__(self, n_routes: int, n_basis: int = 0) -> None:
        self.clock = -1
        self.quotes: dict[str, VenueQuote] = {}
        self.pairs: dict[tuple[str, str], PairState] = {}
        self.routes = [ArbRoute() for _ in range(n_routes)]
        self.wide_open: set[str] = set()
        self.basis = [BasisState() for _ in range(n_basis)]  # in config.basis_pairs order
        self.stock_ts: dict[str, int] = {}  # venue -> ts of its latest accepted stock record
        self.delivery_open: set[str] = set()  # venues with delivery stress open
        self.coverage: dict[str, float] = {}  # venue -> its latest stock record's coverage
        self.status_ts: dict[str, int] = {}  # venue -> ts of its latest accepted status
        self.halted: dict[str, int] = {}  # halted venue -> ts of the record that halted it
        #: level name -> "above" or "below": the side of the level the price was last on
        self.level_sides: dict[str, str] = {}
        #: (stream, key) -> the seq of the last record emitted with that key
        #: (docs/records.md, ``seq``)
        self.seq: dict[tuple[str, str], int] = {}
        # An index of ``quotes`` and ``pairs`` by position (the engine's venue and pair
        # numbers), which the engine keeps with them: the hot path reads a list where it
        # would hash a name or a tuple. Not state: rebuilt from the dicts (Engine.load).
        self.slots: list[VenueQuote | None] = []
        self.pair_slots: list[PairState | None] = []
        # What each venue's leg looked like at the last route evaluation (the engine's
        # Engine._arbitrage): 0 unpriced, 1 priced but not fresh, 2 fresh, -1 not yet
        # seen; its normalised ask and bid. And the routes that evaluation did not park
        # (``route_live[i]``, and the same as a set). Not state: empty here, which makes
        # the next evaluation look at every route, as after a restore.
        self.leg_seen: list[int] = []
        self.leg_ask: list[float] = []
        self.leg_bid: list[float] = []
        self.route_live: list[bool] = []
        self.live_routes: set[int] = set()
