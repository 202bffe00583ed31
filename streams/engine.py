"""The per-instrument arbitrage engine (contracts.md §3-§5).

One :class:`Engine` holds the FX book and the state of every instrument it has seen.
``process(raw, source)`` takes one input record's bytes and returns its output records
in contract order. The Faust agents and ``arbstream replay`` drive the same class; an
engine's whole state converts to and from plain data (``snapshot`` / ``restore``) so a
worker can keep it in a changelogged table and resume exactly.

An engine applies FX in the order it receives it, so in streaming there is one engine
per ticks-topic partition (every partition carries every FX record).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from streams import validation as v
from streams.config import Config
from streams.errors import StateError
from streams.signals import IDLE, ArbRoute, RouteTerms, evaluate_route, wide_signal
from streams.windows import MIN_STD, PairWindows

#: One output: (stream, key, record); stream is "spreads", "signals" or "dlq".
Output = tuple[str, str | None, dict[str, Any]]
Source = dict[str, Any]

SNAPSHOT_VERSION: Final = 1
_USD: Final = (1.0, 0)  # the FX "book" of USD venues: rate 1, never stale


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
    """Spread windows of one unordered venue pair and when it last emitted."""

    __slots__ = ("last_emit", "windows")

    def __init__(self, windows: PairWindows, last_emit: int | None = None) -> None:
        self.windows = windows
        self.last_emit = last_emit


class InstrumentState:
    """Everything the engine knows about one instrument."""

    __slots__ = ("clock", "pairs", "quotes", "routes", "wide_open")

    def __init__(self, n_routes: int) -> None:
        self.clock = -1
        self.quotes: dict[str, VenueQuote] = {}
        self.pairs: dict[tuple[str, str], PairState] = {}
        self.routes = [ArbRoute() for _ in range(n_routes)]
        self.wide_open: set[str] = set()


class Engine:
    """Validate, normalise and evaluate input records; see contracts.md §3-§5."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._fx: dict[str, tuple[float, int]] = {}  # pair -> (mid, ts)
        self._instruments: dict[str, InstrumentState] = {}
        # For each venue: the other venues with the sorted pair they form, in (a, b) order.
        names = config.venue_names
        self._pairs_of: dict[str, list[tuple[str, tuple[str, str], str]]] = {}
        for name in names:
            others = [(u, (name, u) if name < u else (u, name)) for u in names if u != name]
            others.sort(key=lambda o: o[1])
            self._pairs_of[name] = [(u, pair, f"{pair[0]}|{pair[1]}") for u, pair in others]
        self._fx_pair: dict[str, str | None] = {
            name: None if cur == "USD" else "USD" + cur for name, cur in config.currency.items()
        }
        fee = config.fee_bps
        self._routes = [RouteTerms(r, fee[r.buy] + fee[r.sell]) for r in config.routes]
        self._route_keys = [f"arb|{r.buy}>{r.sell}" for r in config.routes]
        # Identifies the config in snapshots, so state is never restored under another one.
        self._digest = hashlib.sha256(config.fingerprint().encode()).hexdigest()[:16]
        self._window_names = [str(w) for w in config.windows_ms]

    # ------------------------------------------------------------------ input

    def process(self, raw: bytes | str, source: Source) -> list[Output]:
        """Apply one input record; return its outputs in contract order (§5)."""
        try:
            obj = v.decode(raw)
        except ValueError:
            return [self._rejected(v.BAD_JSON, raw, source)]
        reason, kind, bid, ask, ts = v.check(obj)
        if reason is not None:
            return [self._rejected(reason, raw, source)]
        if kind == "fx":
            pair: str = obj["pair"]
            book = self._fx.get(pair)
            if book is not None and ts < book[1]:
                return [self._rejected(v.OUT_OF_ORDER, raw, source)]
            self._fx[pair] = ((bid + ask) / 2.0, ts)
            return []
        venue: str = obj["venue"]
        if venue not in self.config.venues:
            return [self._rejected(v.UNKNOWN_VENUE, raw, source)]
        instrument: str = obj["instrument"]
        state = self._instruments.get(instrument)
        if state is None:
            state = self._instruments[instrument] = InstrumentState(len(self.config.routes))
        quote = state.quotes.get(venue)
        if quote is None:
            state.quotes[venue] = self._new_quote(venue, instrument, bid, ask, ts)
        elif ts < quote.ts:
            return [self._rejected(v.OUT_OF_ORDER, raw, source)]
        else:
            quote.bid, quote.ask, quote.ts, quote.book = bid, ask, ts, None
        return self._evaluate(instrument, state, venue, bid, ask, ts)

    def _new_quote(
        self, venue: str, instrument: str, bid: float, ask: float, ts: int
    ) -> VenueQuote:
        cfg = self.config
        factor = 1.0 / (1.0 + cfg.venues[venue].vat) / cfg.oz_per_unit(venue, instrument)
        return VenueQuote(bid, ask, ts, factor, self._fx_pair[venue], cfg.stale_ms[venue])

    def _rejected(self, reason: str, raw: bytes | str, source: Source) -> Output:
        record = {"type": "rejected", "reason": reason, "raw": v.raw_text(raw), "source": source}
        return ("dlq", None, record)

    # ------------------------------------------------------------- evaluation

    def _evaluate(
        self, instrument: str, state: InstrumentState, venue: str, bid: float, ask: float, ts: int
    ) -> list[Output]:
        t = state.clock = ts if ts > state.clock else state.clock
        fx_book = self._fx
        fx_stale = self.config.fx_stale_ms
        # Whether each quoted venue is fresh at t, normalising where quote or FX changed.
        fresh: dict[str, bool] = {}
        for name, q in state.quotes.items():
            pair = q.fx_pair
            book: tuple[float, int]
            if pair is None:
                book = _USD
                fx_ok = True
            else:
                seen = fx_book.get(pair)
                if seen is None:
                    fresh[name] = False  # no FX yet: cannot be normalised, never fresh
                    continue
                book = seen
                fx_ok = t - book[1] <= fx_stale
            if book is not q.book:  # the quote or its FX changed since last normalised
                k = q.factor / book[0]
                q.nbid, q.nask, q.book = q.bid * k, q.ask * k, book
            fresh[name] = fx_ok and t - q.ts <= q.stale_ms

        out: list[Output] = []
        if fresh[venue]:
            self._spreads(instrument, state, venue, t, fresh, out)
        arb = self.config.arb
        open_usd = arb.open_usd
        quotes = state.quotes
        for terms, rstate, key in zip(self._routes, state.routes, self._route_keys, strict=True):
            qb = quotes.get(terms.buy)
            qs = quotes.get(terms.sell)
            if qb is None or qs is None or qb.book is None or qs.book is None:
                continue  # a leg never normalised: the route has never left idle
            eligible = fresh[terms.buy] and fresh[terms.sell]
            idle = rstate.state == IDLE
            if idle and not eligible:
                continue
            buy_ask, sell_bid = qb.nask, qs.nbid
            net = sell_bid - buy_ask - (terms.cost_usd + terms.cost_frac * buy_ask)  # .net()
            if idle and net < open_usd:
                continue  # the common case, decided without a call
            record = evaluate_route(rstate, terms.route, arb, buy_ask, sell_bid, net, eligible, t)
            if record is not None:
                record["instrument"] = instrument
                out.append(("signals", f"{instrument}|{key}", record))
        wide = wide_signal(state.wide_open, self.config.wide, venue, bid, ask, t)
        if wide is not None:
            wide["instrument"] = instrument
            out.append(("signals", f"{instrument}|wide|{venue}", wide))
        return out

    def _spreads(
        self,
        instrument: str,
        state: InstrumentState,
        venue: str,
        t: int,
        fresh: dict[str, bool],
        out: list[Output],
    ) -> None:
        emit_ms = self.config.spread_emit_ms
        window_names = self._window_names
        pairs = state.pairs
        quotes = state.quotes
        for other, pair, pair_key in self._pairs_of[venue]:
            if not fresh.get(other, False):
                continue
            a, b = pair
            qa, qb = quotes[a], quotes[b]
            a_mid = (qa.nbid + qa.nask) / 2.0
            b_mid = (qb.nbid + qb.nask) / 2.0
            spread = a_mid - b_mid
            ps = pairs.get(pair)
            if ps is None:
                ps = pairs[pair] = PairState(PairWindows(self.config.windows_ms))
            ps.windows.add(t, spread)
            if ps.last_emit is not None and t - ps.last_emit < emit_ms:
                continue
            ps.last_emit = t
            windows: dict[str, dict[str, Any]] = {}
            for name, (n, mean, var, lo, hi) in zip(window_names, ps.windows.stats(), strict=True):
                std = var**0.5
                windows[name] = {
                    "n": n,
                    "mean": mean,
                    "std": std,
                    "min": lo,
                    "max": hi,
                    "z": (spread - mean) / std if n >= 2 and std >= MIN_STD else None,
                }
            record = {
                "type": "spread",
                "instrument": instrument,
                "a": a,
                "b": b,
                "ts": t,
                "a_mid": a_mid,
                "b_mid": b_mid,
                "spread": spread,
                "spread_bps": spread / b_mid * 10000.0,
                "windows": windows,
            }
            out.append(("spreads", f"{instrument}|{pair_key}", record))

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        """The engine's whole state as plain data (JSON-serialisable)."""
        instruments = {}
        for name, st in self._instruments.items():
            instruments[name] = {
                "clock": st.clock,
                "quotes": {n: [q.bid, q.ask, q.ts] for n, q in st.quotes.items()},
                "pairs": [
                    [a, b, ps.last_emit, ps.windows.to_state()] for (a, b), ps in st.pairs.items()
                ],
                "routes": [r.to_state() for r in st.routes],
                "wide_open": sorted(st.wide_open),
            }
        return {
            "version": SNAPSHOT_VERSION,
            "config": self._digest,
            "fx": {pair: [mid, ts] for pair, (mid, ts) in self._fx.items()},
            "instruments": instruments,
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Replace the engine's state with a snapshot taken under the same config."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise StateError(f"unsupported snapshot version {snapshot.get('version')!r}")
        if snapshot.get("config") != self._digest:
            raise StateError("snapshot was taken under a different config")
        try:
            fx = {p: (float(m), int(ts)) for p, (m, ts) in snapshot["fx"].items()}
            instruments = {}
            for name, data in snapshot["instruments"].items():
                st = InstrumentState(0)
                st.clock = int(data["clock"])
                st.quotes = {
                    n: self._new_quote(n, name, float(b), float(a), int(ts))
                    for n, (b, a, ts) in data["quotes"].items()
                }
                st.pairs = {
                    (a, b): PairState(PairWindows.from_state(w), last)
                    for a, b, last, w in data["pairs"]
                }
                st.routes = [ArbRoute.from_state(r) for r in data["routes"]]
                if len(st.routes) != len(self.config.routes):
                    raise StateError(f"snapshot of {name} has a different number of routes")
                st.wide_open = set(data["wide_open"])
                instruments[name] = st
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"malformed snapshot: {exc!r}") from exc
        self._fx = fx
        self._instruments = instruments
