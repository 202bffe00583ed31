"""A read-only view of an engine for metrics: quote ages, current spreads, routes.

Metrics are scraped between batches, so nothing here may change what the engine
computes: the windows' ``stats()`` folds samples, and folding at scrape times would make
a live engine's floating-point sums differ from a replay's. The spread figures therefore
come from the last spread record the engine emitted (``Engine.latest_spreads``). Which
quotes are fresh, and their USD/oz prices, come from streams.freshness, the engine's own
rule; it may refresh a quote's cached normalised prices, which are a function of the
quote and its FX alone, so the engine computes the same either way (tested).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.engine import Engine
from streams.freshness import mark_fresh
from streams.signals import OPEN
from streams.state import InstrumentState


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


def _fresh(engine: Engine, st: InstrumentState) -> dict[str, bool]:
    fresh: dict[str, bool] = {}
    mark_fresh(st.quotes, engine.fx_book, st.clock, engine.config.fx_stale_ms, fresh)
    return fresh


def _spreads(engine: Engine, name: str, st: InstrumentState, out: Observation) -> None:
    fresh = _fresh(engine, st)
    for a, b in st.pairs:
        record = engine.latest_spreads.get((name, f"{a}|{b}"))
        if record is None:
            continue
        if not (fresh.get(a) and fresh.get(b)):
            continue  # a leg went stale since: the last spread no longer holds
        z = {w: s["z"] for w, s in record["windows"].items() if s["z"] is not None}
        out.spreads.append(SpreadView(name, f"{a}|{b}", record["spread"], record["spread_bps"], z))


def _routes(engine: Engine, name: str, st: InstrumentState, out: Observation) -> None:
    t = st.clock
    fresh = _fresh(engine, st)
    for terms, r in zip(engine.route_terms, st.routes, strict=True):
        net = None
        if fresh.get(terms.buy) and fresh.get(terms.sell):
            net = terms.net(st.quotes[terms.buy].nask, st.quotes[terms.sell].nbid)
        is_open = r.state == OPEN
        route = f"{terms.buy}>{terms.sell}"
        out.routes.append(RouteView(name, route, is_open, net, t - r.opened_ts if is_open else 0))
