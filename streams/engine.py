"""The per-instrument arbitrage engine (docs/evaluation.md; its records: docs/records.md).

One :class:`Engine` holds the FX book and the state of every instrument it has seen.
``process(raw, position)`` takes one input record's bytes and returns its output records
in the documented order (docs/records.md). Every worker partition and ``arbstream
replay`` drive the same class; an engine's state converts to and from key-value entries
(``changes`` / ``snapshot`` / ``load``, see streams/changelog.py) so a worker can keep it
in a compacted Kafka topic, written in the transaction of the outputs, and resume
exactly.

An engine applies FX in the order it receives it, so in streaming there is one engine
per ticks-topic partition (every partition carries every FX record).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from arbstream.streams import changelog
from arbstream.streams import validation as v
from arbstream.streams.config import EngineConfig
from arbstream.streams.counters import EngineCounters
from arbstream.streams.errors import StateError
from arbstream.streams.freshness import mark_fresh
from arbstream.streams.halts import halt_signal, level_crosses
from arbstream.streams.market import delivery_signal, evaluate_basis
from arbstream.streams.routes import INDEX_FROM, Routes
from arbstream.streams.signals import RouteTerms, WideLimits, wide_signal
from arbstream.streams.spreads import Spreads
from arbstream.streams.state import InstrumentState, VenueQuote

#: One output: (stream, key, record); stream is "spreads", "signals" or "dlq".
Output = tuple[str, str | None, dict[str, Any]]
#: Where an input came from, as a rejected record's ``source`` shows it (docs/records.md,
#: "rejected").
Source = dict[str, Any]


_NONE: list[Output] = []  # never appended to


def line_source(position: int) -> Source:
    """``source`` in a replay: the input's 1-based line number."""
    return {"line": position}


class Engine:
    """Validate, normalise and evaluate input records; see docs/evaluation.md."""

    def __init__(
        self,
        config: EngineConfig,
        source_of: Callable[[int], Source] = line_source,
        route_index_from: int = INDEX_FROM,
    ) -> None:
        """``route_index_from``: the routes from which they are indexed by venue
        (streams/routes.py; the outputs are the same either way)."""
        self.config = config
        self.counters = EngineCounters()
        # Builds a rejected record's ``source`` from the input's position (line number,
        # or Kafka offset), so accepted inputs cost no per-record allocation for it.
        self.source_of = source_of
        self._fx: dict[str, tuple[float, int]] = {}  # pair -> (mid, ts)
        self._instruments: dict[str, InstrumentState] = {}
        # What changed since the last call of changes(): see streams/changelog.py.
        self._dirty: set[str] = set()
        self._fx_dirty = False
        self._meta_saved = False
        # Venues and pairs are numbered (InstrumentState.slots / pair_slots); for each
        # venue, its links to the other venues, in the order of the sorted pairs.
        names = config.venue_names
        self._venue_index = {name: i for i, name in enumerate(names)}
        pairs = sorted((a, b) for a in names for b in names if a < b)
        self._pair_names: list[tuple[str, str]] = pairs
        self._spreads = Spreads(config, self._venue_index, pairs)
        self._fx_pair: dict[str, str | None] = {
            name: None if cur == "USD" else "USD" + cur for name, cur in config.currency.items()
        }
        self._routes = Routes(config, self._venue_index, route_index_from)
        # Identifies the config in snapshots, so state is never restored under another one.
        self._digest = hashlib.sha256(config.fingerprint().encode()).hexdigest()[:16]
        self._has_basis = bool(config.basis_pairs)
        self._levels = config.levels
        self._has_levels = bool(config.levels)
        self._sessions = any(c is not None for c in config.calendars.values())
        # The settings read per record, held here: attributes of this (compiled) class
        # are read natively, the config's through Python's attribute protocol.
        self._fx_stale_ms = config.fx_stale_ms
        self._wide = WideLimits(config.wide)
        #: The last spread record emitted per (instrument, "A|B"), for metrics. Not state:
        #: a rebuilt engine starts without, and fills it as it emits.
        self.latest_spreads = self._spreads.latest

    # ------------------------------------------------------------------ input

    def process(self, raw: bytes | str, position: int) -> list[Output]:
        """Apply one input record; return its outputs in the order of docs/records.md
        ("Output order").

        ``position`` locates the input for a rejection's ``source`` (see ``source_of``).
        """
        try:
            obj = v.decode(raw)
        except ValueError:
            return [self._rejected(v.BAD_JSON, raw, position)]
        reason, kind, bid, ask, ts = v.check(obj)
        if reason is not None:
            return [self._rejected(reason, raw, position)]
        if kind == "fx":
            pair: str = obj["pair"]
            book = self._fx.get(pair)
            if book is not None and ts < book[1]:
                return [self._rejected(v.OUT_OF_ORDER, raw, position)]
            self._fx[pair] = ((bid + ask) / 2.0, ts)
            self._fx_dirty = True
            fx_counts = self.counters.fx
            fx_counts[pair] = fx_counts.get(pair, 0) + 1
            return []
        venue: str = obj["venue"]
        vi = self._venue_index.get(venue)
        if vi is None:
            return [self._rejected(v.UNKNOWN_VENUE, raw, position)]
        instrument: str = obj["instrument"]
        state = self._instruments.get(instrument)
        if state is None:
            state = self._instruments[instrument] = self._indexed(
                InstrumentState(len(self.config.routes), len(self.config.basis_pairs))
            )
        if kind == "stock":
            return self._stock(obj, state, venue, instrument, raw, position, ts)
        if kind == "status":
            return self._status(obj, state, vi, instrument, raw, position, ts)
        quote = state.slots[vi]
        if quote is None:
            quote = self._new_quote(venue, instrument, bid, ask, ts)
            quote.halted = venue in state.halted
            state.quotes[venue] = state.slots[vi] = quote
        elif ts < quote.ts:
            return [self._rejected(v.OUT_OF_ORDER, raw, position)]
        else:
            quote.bid, quote.ask, quote.ts, quote.book = bid, ask, ts, None
        quote.record = obj
        self._dirty.add(instrument)
        counted = self.counters.quotes
        counted[quote.label] = counted.get(quote.label, 0) + 1
        out = self._evaluate(instrument, state, vi, quote, bid, ask, ts)
        if out:
            self._numbered(state, out)
        return out

    def _numbered(self, state: InstrumentState, out: list[Output]) -> None:
        """Give each output its ``seq`` (every keyed record has one: docs/records.md), and
        count the signals."""
        signals = self.counters.signals
        seqs = state.seq
        for stream, key, record in out:
            if stream == "signals":
                signal = (record["kind"], record["event"])
                signals[signal] = signals.get(signal, 0) + 1
                if signal[0] == "level":
                    crosses = self.counters.crosses
                    cross = (record["instrument"], record["name"], record["direction"])
                    crosses[cross] = crosses.get(cross, 0) + 1
            if key is not None:  # (always, for the outputs of a quote or a status)
                record["seq"] = seqs[stream, key] = seqs.get((stream, key), 0) + 1

    def _status(
        self,
        obj: dict[str, Any],
        state: InstrumentState,
        vi: int,
        instrument: str,
        raw: bytes | str,
        position: int,
        ts: int,
    ) -> list[Output]:
        """A status record: the venue's halt signal, then the routes and the basis
        signals of the instrument, evaluated at its clock (docs/evaluation.md, "Halts")."""
        venue = self.config.venue_names[vi]
        last = state.status_ts.get(venue)
        if last is not None and ts < last:
            return [self._rejected(v.OUT_OF_ORDER, raw, position)]
        state.status_ts[venue] = ts
        self._dirty.add(instrument)
        t = state.clock = ts if ts > state.clock else state.clock
        out: list[Output] = []
        halt = halt_signal(obj, state, state.slots[vi], venue, instrument, ts)
        if halt is not None:
            out.append(("signals", f"{instrument}|halt|{venue}", halt))
        mark_fresh(state.quotes, self._fx, t, self._fx_stale_ms, self._sessions)
        self._routes.evaluate(instrument, state, t, out)
        if self._has_basis:
            # (no venue: a status emits basis signals, never basis records)
            evaluate_basis(self.config, instrument, state, "", t, [], out)
        if out:
            self._numbered(state, out)
        return out

    def _stock(
        self,
        obj: dict[str, Any],
        state: InstrumentState,
        venue: str,
        instrument: str,
        raw: bytes | str,
        position: int,
        ts: int,
    ) -> list[Output]:
        """A stock record: delivery stress only (no clock, no price evaluation)."""
        last = state.stock_ts.get(venue)
        if last is not None and ts < last:
            return [self._rejected(v.OUT_OF_ORDER, raw, position)]
        state.stock_ts[venue] = ts
        self._dirty.add(instrument)
        record = delivery_signal(
            self.config, instrument, state, venue, obj["registered"], obj["open_interest"], ts
        )
        if record is None:
            return []
        signals = self.counters.signals
        signals["delivery", record["event"]] = signals.get(("delivery", record["event"]), 0) + 1
        key = f"{instrument}|delivery|{venue}"
        record["seq"] = state.seq["signals", key] = state.seq.get(("signals", key), 0) + 1
        return [("signals", key, record)]

    def _new_quote(
        self, venue: str, instrument: str, bid: float, ask: float, ts: int
    ) -> VenueQuote:
        cfg = self.config
        factor = 1.0 / (1.0 + cfg.venues[venue].vat) / cfg.oz_per_unit(venue, instrument)
        quote = VenueQuote(
            bid,
            ask,
            ts,
            factor,
            self._fx_pair[venue],
            cfg.stale_ms[venue],
            cfg.calendars[venue],
            cfg.oz_per_lot(venue, instrument),
        )
        quote.label = (venue, instrument)
        return quote

    def _indexed(self, state: InstrumentState) -> InstrumentState:
        """``state`` with its slots built from its quotes and pairs."""
        state.slots = [state.quotes.get(name) for name in self.config.venue_names]
        state.pair_slots = [state.pairs.get(pair) for pair in self._pair_names]
        return state

    def _rejected(self, reason: str, raw: bytes | str, position: int) -> Output:
        rejected = self.counters.rejected
        rejected[reason] = rejected.get(reason, 0) + 1
        record = {
            "type": "rejected",
            "reason": reason,
            "raw": v.raw_text(raw),
            "source": self.source_of(position),
        }
        return ("dlq", None, record)

    # ------------------------------------------------------------- evaluation

    def _evaluate(
        self,
        instrument: str,
        state: InstrumentState,
        vi: int,
        quote: VenueQuote,
        bid: float,
        ask: float,
        ts: int,
    ) -> list[Output]:
        """The outputs of ``quote`` (of venue number ``vi``), just accepted."""
        t = state.clock = ts if ts > state.clock else state.clock
        mark_fresh(state.quotes, self._fx, t, self._fx_stale_ms, self._sessions)
        venue = self.config.venue_names[vi]

        out: list[Output] = []
        if quote.fresh:
            self._spreads.sample(instrument, state, vi, quote, t, out)
        basis_signals: list[Output] = _NONE
        if self._has_basis:
            basis_signals = []
            evaluate_basis(self.config, instrument, state, venue, t, out, basis_signals)
        self._routes.evaluate(instrument, state, t, out)
        if basis_signals:
            out += basis_signals
        wide = wide_signal(state.wide_open, self._wide, venue, bid, ask, t)
        if wide is not None:
            wide["instrument"] = instrument
            out.append(("signals", f"{instrument}|wide|{venue}", wide))
        if self._has_levels and quote.fresh:
            levels = self._levels.get(quote.label)
            if levels is not None:
                level_crosses(instrument, state, venue, levels, quote, t, out)
        return out

    # ------------------------------------------------------------- read-only views

    @property
    def instruments(self) -> Mapping[str, InstrumentState]:
        """Every instrument's state (read it; never change it: see streams/observe.py)."""
        return self._instruments

    @property
    def fx_book(self) -> Mapping[str, tuple[float, int]]:
        """Pair -> (mid, ts) of the latest FX record per pair."""
        return self._fx

    @property
    def route_terms(self) -> list[RouteTerms]:
        """The configured routes with their costs, in ``InstrumentState.routes`` order."""
        return self._routes.terms

    # ------------------------------------------------------------------ state

    def changes(self) -> list[changelog.Entry]:
        """The state entries written or deleted since the last call (streams/changelog.py).

        A worker appends them to its changelog after each batch; loading every entry
        ever returned, latest value per key, gives back this engine's state.
        """
        out: list[changelog.Entry] = []
        if not self._meta_saved:
            out.append((changelog.META_KEY, changelog.meta_entry(self._digest)))
            self._meta_saved = True
        if self._fx_dirty:
            out.append((changelog.FX_KEY, changelog.encode_fx(self._fx)))
            self._fx_dirty = False
        for name in self._dirty:
            out += changelog.instrument_entries(name, self._instruments[name])
        self._dirty.clear()
        return out

    def snapshot(self) -> dict[str, bytes]:
        """The whole state as entries (what ``load`` takes)."""
        entries = {
            changelog.META_KEY: changelog.meta_entry(self._digest),
            changelog.FX_KEY: changelog.encode_fx(self._fx),
        }
        for name, st in self._instruments.items():
            for key, value in changelog.instrument_entries(name, st, everything=True):
                if value is not None:
                    entries[key] = value
        return entries

    def load(self, entries: Mapping[str, bytes]) -> None:
        """Replace the state with the one in ``entries`` (written under the same config).

        An empty mapping is an engine's initial state.
        """
        if entries:
            changelog.check_meta(entries.get(changelog.META_KEY), self._digest)
        fx = changelog.decode_fx(entries[changelog.FX_KEY]) if changelog.FX_KEY in entries else {}
        n_routes = len(self.config.routes)
        instruments: dict[str, InstrumentState] = {}
        for name in changelog.instruments_in(entries):
            st, quotes = changelog.decode_instrument(
                name, entries, n_routes, len(self.config.basis_pairs)
            )
            try:
                for venue, (bid, ask, ts, bid_size, ask_size) in quotes.items():
                    if venue not in self.config.venues:
                        raise StateError(f"state of {name} quotes unknown venue {venue!r}")
                    q = self._new_quote(venue, name, float(bid), float(ask), int(ts))
                    q.record = {"bid_size": bid_size, "ask_size": ask_size}
                    q.halted = venue in st.halted
                    st.quotes[venue] = q
            except (TypeError, ValueError) as exc:
                raise StateError(f"malformed quotes in state of {name!r}: {exc!r}") from exc
            instruments[name] = self._indexed(st)
        self._fx = fx
        self._instruments = instruments
        self.latest_spreads.clear()
        self._dirty.clear()
        self._fx_dirty = False
        self._meta_saved = bool(entries)
