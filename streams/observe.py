"""A read-only view of an engine for metrics: quote ages, current spreads, routes, basis
pairs, delivery stress, halted venues and the sides of price levels.

Metrics are scraped between batches, so nothing here may change what the engine
computes: the windows' ``stats()`` folds samples, and folding at scrape times would make
a live engine's floating-point sums differ from a replay's. The spread figures therefore
come from the last spread record the engine emitted (``Engine.latest_spreads``). Which
quotes are fresh, and their USD/oz prices, come from arbstream.streams.freshness, the engine's own
rule; it may refresh a quote's cached normalised prices, which are a function of the
quote and its FX alone, and its fresh flag, which the engine sets again before every
use, so the engine computes the same either way (tested). Basis
figures and route sizes are computed here as the engine would compute them at the
instrument's clock (streams.market); a venue's calendar may cache its answer for the
clock asked, which again changes nothing the engine computes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from arbstream.streams.engine import Engine
from arbstream.streams.freshness import mark_fresh
from arbstream.streams.market import basis_now, pair_figures, route_size_oz
from arbstream.streams.signals import OPEN
from arbstream.streams.state import InstrumentState, VenueQuote


@dataclass(frozen=True, slots=True)
class QuoteView:
    instrument: str
    venue: str
    ts: int  # event time of the venue's latest quote, ms
    behind_ms: int  # the instrument's clock (newest ts of any venue) minus ts


@dataclass(frozen=True, slots=True)
class SpreadView:
    instrument: str
    pair: str  # "A|B", as in spread keys
    spread: float  # USD/oz, A mid - B mid
    spread_bps: float
    z: dict[str, float]  # window name -> z, for windows where z is defined


@dataclass(frozen=True, slots=True)
class RouteView:
    instrument: str
    route: str  # "BUY>SELL"
    open: bool
    net: float | None  # USD/oz now; None until both legs have a usable quote
    open_ms: int  # on the instrument clock; 0 unless open
    size_oz: float | None  # oz at the quoted sizes now (fresh legs with sizes only)


@dataclass(frozen=True, slots=True)
class BasisView:
    instrument: str
    spot: str
    future: str
    open: bool  # the backwardation signal
    figures: dict[str, float | None] | None  # basis_figures() now; None unless both fresh


@dataclass(frozen=True, slots=True)
class DeliveryView:
    instrument: str
    venue: str
    coverage: float  # of the venue's latest stock record
    open: bool  # delivery stress


@dataclass(frozen=True, slots=True)
class HaltView:
    instrument: str
    venue: str
    halted: bool


@dataclass(frozen=True, slots=True)
class LevelView:
    instrument: str
    name: str
    side: str  # "above" or "below" (a level whose side is not known yet is not listed)


@dataclass(slots=True)
class Observation:
    quotes: list[QuoteView] = field(default_factory=list)
    spreads: list[SpreadView] = field(default_factory=list)
    routes: list[RouteView] = field(default_factory=list)
    basis: list[BasisView] = field(default_factory=list)
    delivery: list[DeliveryView] = field(default_factory=list)
    halts: list[HaltView] = field(default_factory=list)
    levels: list[LevelView] = field(default_factory=list)
    clock: int = -1  # the newest instrument clock observed

    def add(self, other: Observation) -> None:
        """Add ``other``'s views to these (one observation of several engines)."""
        self.quotes += other.quotes
        self.spreads += other.spreads
        self.routes += other.routes
        self.basis += other.basis
        self.delivery += other.delivery
        self.halts += other.halts
        self.levels += other.levels
        self.clock = max(self.clock, other.clock)


def observe(engine: Engine, instruments: Iterable[str]) -> Observation:
    """The view of ``instruments`` (others are skipped) as the engine stands."""
    out = Observation()
    known = engine.instruments
    for name in instruments:  # not every instrument ever seen: junk may be many
        st = known.get(name)
        if st is None:
            continue
        t = st.clock
        out.clock = max(out.clock, t)
        for venue, q in st.quotes.items():
            out.quotes.append(QuoteView(name, venue, q.ts, t - q.ts))
        mark_fresh(st.quotes, dict(engine.fx_book), t, engine.config.fx_stale_ms)
        _spreads(engine, name, st, out)
        _routes(engine, name, st, out)
        _basis(engine, name, st, out)
        for venue, coverage in sorted(st.coverage.items()):
            out.delivery.append(DeliveryView(name, venue, coverage, venue in st.delivery_open))
        for venue in engine.config.venue_names:
            out.halts.append(HaltView(name, venue, venue in st.halted))
        for level, side in sorted(st.level_sides.items()):
            out.levels.append(LevelView(name, level, side))
    return out


def _fresh(st: InstrumentState, venue: str) -> VenueQuote | None:
    """The venue's quote if it is fresh (``mark_fresh`` has run at the clock)."""
    q = st.quotes.get(venue)
    return q if q is not None and q.fresh else None


def _spreads(engine: Engine, name: str, st: InstrumentState, out: Observation) -> None:
    for a, b in st.pairs:
        record = engine.latest_spreads.get((name, f"{a}|{b}"))
        if record is None:
            continue
        if _fresh(st, a) is None or _fresh(st, b) is None:
            continue  # a leg went stale since: the last spread no longer holds
        z = {w: s["z"] for w, s in record["windows"].items() if s["z"] is not None}
        out.spreads.append(SpreadView(name, f"{a}|{b}", record["spread"], record["spread_bps"], z))


def _routes(engine: Engine, name: str, st: InstrumentState, out: Observation) -> None:
    t = st.clock
    for terms, r in zip(engine.route_terms, st.routes, strict=True):
        net = size_oz = None
        buy, sell = _fresh(st, terms.buy), _fresh(st, terms.sell)
        if buy is not None and sell is not None:
            net = terms.net(buy.nask, sell.nbid)
            size_oz = route_size_oz(buy, sell)
        is_open = r.state == OPEN
        route = f"{terms.buy}>{terms.sell}"
        open_ms = t - r.opened_ts if is_open else 0
        out.routes.append(RouteView(name, route, is_open, net, open_ms, size_oz))


def _basis(engine: Engine, name: str, st: InstrumentState, out: Observation) -> None:
    config = engine.config
    for (spot, future), bs in zip(config.basis_pairs, st.basis, strict=True):
        qs, qf = st.quotes.get(spot), st.quotes.get(future)
        if qs is None or qf is None:
            continue  # never quoted: nothing to show
        eligible, days = basis_now(config, qs, qf, future, st.clock)
        figures = pair_figures(config, qs, qf, days) if eligible else None
        out.basis.append(BasisView(name, spot, future, bs.open, figures))
