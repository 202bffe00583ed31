"""Arbitrage routes: which to evaluate after a record, and the signals they give
(docs/evaluation.md, "Arbitrage").

Each route's state machine is streams/signals.py's ``evaluate_route``; this module walks
the routes of one instrument, skipping those that cannot have changed (``evaluate``
says why that is exact), and completes the signals with what only the engine knows:
the instrument, why a route closed, its size and edge.
"""

from __future__ import annotations

from typing import Any

from arbstream.streams.config import EngineConfig
from arbstream.streams.market import route_size_oz, venues_closed
from arbstream.streams.signals import IDLE, ArbLimits, RouteTerms, evaluate_route
from arbstream.streams.state import InstrumentState, VenueQuote

#: (stream, key, record), as the engine's outputs.
Output = tuple[str, str | None, dict[str, Any]]
#: Routes from which they are indexed by venue. Below it, walking every route costs less
#: than choosing which to walk: indexed, 6 routes cost 14% more instructions per tick,
#: 10 routes 3% more, 28 routes 4% less, 45 routes 8% less, 190 routes 30% less
#: (docs/performance.md, 2026-12-07).
INDEX_FROM = 20


class Routes:
    """The configured routes, with their costs and an index of them by venue."""

    def __init__(
        self, config: EngineConfig, venue_index: dict[str, int], index_from: int = INDEX_FROM
    ) -> None:
        self.config = config
        fee = config.fee_bps
        #: In config order, which is ``InstrumentState.routes`` order.
        self.terms = [
            RouteTerms(r, fee[r.buy] + fee[r.sell], venue_index[r.buy], venue_index[r.sell])
            for r in config.routes
        ]
        self._keys = [f"arb|{r.buy}>{r.sell}" for r in config.routes]
        self._limits = ArbLimits(config.arb)
        self._indexed = len(self.terms) >= index_from
        # The routes with a leg at each venue (by venue number, in route order), and
        # every route.
        self._routes_of_venue: list[list[int]] = [
            [i for i, r in enumerate(self.terms) if vi in (r.buy_index, r.sell_index)]
            for vi in range(len(venue_index))
        ]
        self._all_routes = list(range(len(self.terms)))

    def evaluate(self, instrument: str, state: InstrumentState, t: int, out: list[Output]) -> None:
        """Evaluate the routes of the instrument at ``t`` (its legs' freshness marked),
        in route order: every route, or, from ``INDEX_FROM`` routes, those that can
        change.

        A route is *parked* when the loop below decides on its legs alone that nothing
        happens: a leg never priced, or the route idle and either a leg not fresh or its
        net below ``open_usd``. That reads only the two legs (priced, fresh, normalised
        ask and bid) and the route's state, which a parked route keeps. So a route parked
        at the last evaluation, whose legs both look as they did then, would be parked
        again, and is not looked at: only the routes of venues whose leg changed (a
        quote, new FX, freshness lost or regained through time, a session or a halt) and
        the routes not parked last time are. The outputs are exactly those of walking
        every route, at a cost that grows with one venue's routes instead of all.
        """
        indexed = self._indexed
        indexes = self._select(state) if indexed else self._all_routes
        routes, slots, route_states = self.terms, state.slots, state.routes
        route_live, live_routes = state.route_live, state.live_routes
        arb = self._limits
        open_usd = arb.open_usd
        for i in indexes:  # by index: zip would build a tuple per route
            terms = routes[i]
            qb = slots[terms.buy_index]
            qs = slots[terms.sell_index]
            parked = True
            # (a leg never normalised: the route has never left idle)
            if qb is not None and qs is not None and qb.book is not None and qs.book is not None:
                rstate = route_states[i]
                eligible = qb.fresh and qs.fresh
                buy_ask, sell_bid = qb.nask, qs.nbid
                net = sell_bid - buy_ask - (terms.cost_usd + terms.cost_frac * buy_ask)  # .net()
                if rstate.state != IDLE or (eligible and net >= open_usd):  # else: common
                    parked = False
                    record = evaluate_route(
                        rstate, terms.route, arb, buy_ask, sell_bid, net, eligible, t
                    )
                    if record is not None:
                        self._complete(instrument, state, terms, qb, qs, record, t)
                        out.append(("signals", f"{instrument}|{self._keys[i]}", record))
            if indexed and parked == route_live[i]:
                route_live[i] = not parked
                if parked:
                    live_routes.discard(i)
                else:
                    live_routes.add(i)

    def _select(self, state: InstrumentState) -> list[int]:
        """The routes to evaluate: those not parked last time, and those of the venues
        whose leg changed since (recorded in ``state``), in route order."""
        slots = state.slots
        seen, asks, bids = state.leg_seen, state.leg_ask, state.leg_bid
        n = len(self.terms)
        if len(seen) != len(slots):  # first evaluation since the state was built
            state.leg_seen = seen = [-1] * len(slots)
            state.leg_ask = asks = [0.0] * len(slots)
            state.leg_bid = bids = [0.0] * len(slots)
            state.route_live = [True] * n
            state.live_routes = set(self._all_routes)
        live_routes = state.live_routes
        changed: list[int] = []
        for vi in range(len(slots)):
            q = slots[vi]
            look = 0
            ask = bid = 0.0
            if q is not None and q.book is not None:
                look = 2 if q.fresh else 1
                ask, bid = q.nask, q.nbid
            if look != seen[vi] or ask != asks[vi] or bid != bids[vi]:
                seen[vi], asks[vi], bids[vi] = look, ask, bid
                changed.append(vi)
        of_venue = self._routes_of_venue
        if not live_routes and len(changed) <= 1:  # the common case: one quote, all idle
            return of_venue[changed[0]] if changed else []
        candidates = set(live_routes)
        for vi in changed:
            candidates.update(of_venue[vi])
        # (most routes: walk them all rather than sort them)
        return self._all_routes if len(candidates) > n // 2 else sorted(candidates)

    def _complete(
        self,
        instrument: str,
        state: InstrumentState,
        terms: RouteTerms,
        qb: VenueQuote,
        qs: VenueQuote,
        record: dict[str, Any],
        t: int,
    ) -> None:
        """Complete an arb signal: its instrument, why it closed, its size and edge."""
        record["instrument"] = instrument
        if record["reason"] == "stale":
            halted = state.halted
            if halted and (terms.buy in halted or terms.sell in halted):
                record["reason"] = "halted"
            elif venues_closed(self.config, t, terms.buy, terms.sell):
                record["reason"] = "closed"
        record["size_oz"] = size_oz = route_size_oz(qb, qs)
        record["edge_usd"] = None if size_oz is None else record["net"] * size_oz
