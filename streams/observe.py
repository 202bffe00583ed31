"""A read-only view of an engine for metrics: quote ages, current spreads, routes.

Metrics are scraped between batches, so nothing here may change the engine: the
windows' ``stats()`` folds samples, and folding at scrape times would make a live
engine's floating-point sums differ from a replay's. The spread figures therefore come
from the last spread record the engine emitted (``Engine.latest_spreads``), and a
route's current net is computed from the quotes as they are, without normalising them
in place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.engine import Engine
from streams.signals import OPEN
from streams.state import InstrumentState, VenueQuote


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


@dataclass(slots=True)
class Observation:
    quotes: list[QuoteView] = field(default_factory=list)
    spreads: list[SpreadView] = field(default_factory=list)
    routes: list[RouteView] = field(default_factory=list)


def observe(engine: Engine, instruments: Iterable[str]) -> Observation:
    """The view of ``instruments`` (others are skipped) as the engine stands."""
    out = Observation()
    known = engine.instruments
    for name in instruments:  # not every instrument ever seen: junk may be many
        st = known.get(name)
        if st is None:
            continue
        t = st.clock
        for venue, q in st.quotes.items():
            out.quotes.append(QuoteView(name, venue, q.ts, t - q.ts))
        _spreads(engine, name, st, out)
        _routes(engine, name, st, out)
    return out


def _usd_quote(engine: Engine, q: VenueQuote, t: int) -> tuple[float, float] | None:
    """(bid, ask) in USD/oz, or None when the quote cannot be normalised or is stale."""
    if q.fx_pair is None:
        mid = 1.0
    else:
        book = engine.fx_book.get(q.fx_pair)
        if book is None or t - book[1] > engine.config.fx_stale_ms:
            return None
        mid = book[0]
    if t - q.ts > q.stale_ms:
        return None
    k = q.factor / mid
    return q.bid * k, q.ask * k


def _spreads(engine: Engine, name: str, st: InstrumentState, out: Observation) -> None:
    for a, b in st.pairs:
        record = engine.latest_spreads.get((name, f"{a}|{b}"))
        if record is None:
            continue
        legs = st.quotes.get(a), st.quotes.get(b)
        if any(q is None or _usd_quote(engine, q, st.clock) is None for q in legs):
            continue  # a leg went stale since: the last spread no longer holds
        z = {w: s["z"] for w, s in record["windows"].items() if s["z"] is not None}
        out.spreads.append(SpreadView(name, f"{a}|{b}", record["spread"], record["spread_bps"], z))


def _routes(engine: Engine, name: str, st: InstrumentState, out: Observation) -> None:
    t = st.clock
    for terms, r in zip(engine.route_terms, st.routes, strict=True):
        buy, sell = st.quotes.get(terms.buy), st.quotes.get(terms.sell)
        net = None
        if buy is not None and sell is not None:
            b, s = _usd_quote(engine, buy, t), _usd_quote(engine, sell, t)
            if b is not None and s is not None:
                net = terms.net(b[1], s[0])
        is_open = r.state == OPEN
        route = f"{terms.buy}>{terms.sell}"
        out.routes.append(RouteView(name, route, is_open, net, t - r.opened_ts if is_open else 0))
