"""Live terminal view of ``make demo``: a view model of the arbstream topics and its rich rendering.

A consumer elsewhere reads the ticks, spreads and signals topics and hands each decoded record
(contracts.md sections 2 and 5) to :class:`Dashboard`. This module is pure: no Kafka, no asyncio,
no I/O and no clock reads; every method that depends on time takes the wall-clock ``now_ms``.
That keeps the view deterministic and testable from plain dicts, and lets one model drive a rich
``Live`` display, a one-line status for logs/CI and an end-of-run summary.

Two clocks are shown. Event-time ages use the instrument clock of contracts section 4 (largest
``ts`` seen on the instrument), so a replayed or lagging stream still shows how far each venue
trails the others. Wall-clock figures (tick rate, ``recv_ts`` age) show whether data arrives now.

The records come off a topic anyone can write to, so nothing here raises on bad input and memory
is bounded by the configuration, not the input: names outside the config are tracked up to
``MAX_TRACKED`` per kind, and whatever the view cannot use or track is counted in ``other``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from arbstream.dashboard_parts import (
    MAX_ROWS,
    Arb,
    Delivery,
    Priced,
    Quote,
    Spread,
    age,
    basis_table,
    delivery_table,
    footer,
    name_of,
    names_of,
    new_table,
    num_of,
    nums_of,
    signed,
    ts_of,
    window_label,
    z_style,
)
from streams.sessions import Calendar

MAX_TRACKED = 100  # distinct unconfigured venues / instruments / pairs / routes / FX pairs each
_SIGNAL_KEYS = ("arb.open", "arb.close", "arb.update", "wide.open", "wide.close")


class Dashboard:
    """Counts and latest state of the ticks, spreads and signals topics, renderable with rich."""

    def __init__(
        self,
        venues: Sequence[str],
        windows_ms: Sequence[int],
        rate_window_ms: int = 10_000,
        calendars: Mapping[str, Calendar | None] | None = None,
    ) -> None:
        if rate_window_ms <= 0:
            raise ValueError("rate_window_ms must be positive")
        self._venues = tuple(dict.fromkeys(venues))
        self._windows = tuple(int(w) for w in windows_ms)
        self._rate_window_ms = rate_window_ms
        self._quotes: dict[str, int] = dict.fromkeys(self._venues, 0)
        self._last_quote: dict[str, Quote] = {}
        # [wall ms, count] pairs, one per distinct ms: at most rate_window_ms + 1 entries per venue
        # however fast quotes arrive, unlike one entry per quote
        self._arrivals: dict[str, deque[list[int]]] = {v: deque() for v in self._venues}
        self._clock: dict[str, int] = {}
        self._fx: dict[str, Priced] = {}
        self._spread_count = 0
        self._spreads: dict[tuple[str, ...], Spread] = {}
        self._signals: dict[str, int] = dict.fromkeys(_SIGNAL_KEYS, 0)
        self._arbs: dict[tuple[str, ...], Arb] = {}
        self._wides: dict[tuple[str, ...], Priced] = {}
        # (instrument, spot, future) -> latest basis record's figures; backwardation open
        self._basis: dict[tuple[str, ...], dict[str, Any]] = {}
        self._backwardation: dict[tuple[str, ...], int] = {}  # -> opened_ts
        # (instrument, venue) -> the latest delivery signal's figures and its open time
        self._delivery: dict[tuple[str, ...], Delivery] = {}
        # venue -> its trading sessions, for the open/closed column (none: no column)
        self._calendars = {v: c for v, c in (calendars or {}).items() if c is not None}
        self._other = 0

    @property
    def other(self) -> int:
        """Records ignored in whole or in part: malformed, or beyond the ``MAX_TRACKED`` caps."""
        return self._other

    # -- observing ---------------------------------------------------------------------------

    def observe_tick(self, record: dict[str, Any], now_ms: int) -> None:
        if isinstance(record, dict):
            kind = record.get("type")
            if kind == "quote" and self._observe_quote(record, now_ms):
                return
            if kind == "fx" and self._observe_fx(record):
                return
            if kind == "stock":  # shown through its delivery signal
                return
        self._other += 1

    def _observe_quote(self, record: dict[str, Any], now_ms: int) -> bool:
        names, prices = names_of(record, "venue", "instrument"), nums_of(record, "bid", "ask")
        ts = ts_of(record.get("ts"))
        if names is None or prices is None or ts is None:
            return False
        (venue, instrument), (bid, ask) = names, prices
        if venue not in self._quotes:
            if len(self._quotes) - len(self._venues) >= MAX_TRACKED:
                return False
            self._quotes[venue] = 0
        self._quotes[venue] += 1
        if venue not in self._arrivals:
            # the processor rejects unconfigured venues, so they must not move the instrument clock
            return True
        arrivals = self._arrivals[venue]
        if arrivals and now_ms <= arrivals[-1][0]:
            arrivals[-1][1] += 1  # same ms, or the wall clock stepped back: keeps the deque sorted
        else:
            arrivals.append([now_ms, 1])
        self._trim(arrivals, now_ms)
        self._advance_clock(instrument, ts)
        self._last_quote[venue] = Quote(instrument, bid, ask, ts, ts_of(record.get("recv_ts")))
        return True

    def _observe_fx(self, record: dict[str, Any]) -> bool:
        pair, prices, ts = (
            name_of(record.get("pair")),
            nums_of(record, "bid", "ask"),
            ts_of(record.get("ts")),
        )
        if pair is None or prices is None or ts is None:
            return False
        latest = self._fx.get(pair)
        if latest is None and len(self._fx) >= MAX_TRACKED:
            return False
        # the same fx record arrives once per ticks partition; only a newer one replaces it
        if latest is None or ts >= latest.ts:
            self._fx[pair] = Priced(prices[0], prices[1], ts)
        return True

    def observe_spread(self, record: dict[str, Any]) -> None:
        if not isinstance(record, dict) or record.get("type") != "spread":
            self._other += 1
            return
        names, values = (
            names_of(record, "instrument", "a", "b"),
            nums_of(record, "spread", "spread_bps"),
        )
        ts = ts_of(record.get("ts"))
        if names is None or values is None or ts is None:
            self._other += 1
            return
        self._spread_count += 1
        self._advance_clock(names[0], ts)
        latest = self._spreads.get(names)
        if latest is None and len(self._spreads) >= MAX_TRACKED:
            self._other += 1
        elif latest is None or ts >= latest.ts:
            windows = record.get("windows")
            z: dict[int, float] = {}
            for w in self._windows:
                stats = windows.get(str(w)) if isinstance(windows, dict) else None
                value = num_of(stats.get("z")) if isinstance(stats, dict) else None
                if value is not None:
                    z[w] = value
            self._spreads[names] = Spread(values[0], values[1], z, ts)

    def observe_signal(self, record: dict[str, Any]) -> None:
        kind, event = (
            (name_of(record.get("kind")), name_of(record.get("event")))
            if isinstance(record, dict) and record.get("type") == "signal"
            else (None, None)
        )
        key = f"{kind}.{event}"
        if kind is None or event is None or not self._can_track(key):
            self._other += 1
            return
        applied = True
        if kind == "arb":
            applied = self._apply_arb(record, event)
        elif kind == "wide":
            applied = self._apply_wide(record, event)
        elif kind == "basis":
            applied = self._apply_backwardation(record, event)
        elif kind == "delivery":
            applied = self._apply_delivery(record, event)
        if applied:
            self._signals[key] = self._signals.get(key, 0) + 1
        else:
            self._other += 1

    def observe_basis(self, record: dict[str, Any]) -> None:
        """A record of the basis topic: the latest figures per (instrument, spot, future)."""
        key = names_of(record, "instrument", "spot", "future") if isinstance(record, dict) else None
        figures = nums_of(record, "basis", "basis_bps", "days") if key is not None else None
        ts = ts_of(record.get("ts")) if key is not None else None
        if key is None or figures is None or ts is None or record.get("type") != "basis":
            self._other += 1
            return
        if key not in self._basis and len(self._basis) >= MAX_TRACKED:
            self._other += 1
            return
        self._advance_clock(key[0], ts)
        self._basis[key] = {
            "basis": figures[0],
            "basis_bps": figures[1],
            "days": figures[2],
            "carry": num_of(record.get("carry")),
            "lease_rate": num_of(record.get("lease_rate")),
        }

    def _apply_backwardation(self, record: dict[str, Any], event: str) -> bool:
        key, ts = names_of(record, "instrument", "spot", "future"), ts_of(record.get("ts"))
        if key is None or ts is None:
            return False
        self._advance_clock(key[0], ts)
        if event == "close":
            self._backwardation.pop(key, None)
        elif key in self._backwardation or len(self._backwardation) < MAX_TRACKED:
            self._backwardation[key] = ts_of(record.get("opened_ts")) or ts
        return True

    def _apply_delivery(self, record: dict[str, Any], event: str) -> bool:
        key, ts = names_of(record, "instrument", "venue"), ts_of(record.get("ts"))
        figures = nums_of(record, "coverage", "registered", "open_interest")
        if key is None or ts is None or figures is None:
            return False
        if key not in self._delivery and len(self._delivery) >= MAX_TRACKED:
            return False
        coverage, registered, interest = figures
        self._delivery[key] = Delivery(
            coverage, registered, interest, ts if event == "open" else None
        )
        return True

    def _can_track(self, signal_key: str) -> bool:
        extra = len(self._signals) - len(_SIGNAL_KEYS)
        return signal_key in self._signals or extra < MAX_TRACKED

    def _apply_arb(self, record: dict[str, Any], event: str) -> bool:
        route, ts = names_of(record, "instrument", "buy", "sell"), ts_of(record.get("ts"))
        net = num_of(record.get("net"))
        opens = event in ("open", "update")  # an update seen without its open still means open
        if route is None or ts is None or (opens and net is None):
            return False
        self._advance_clock(route[0], ts)
        current = self._arbs.get(route)
        if event == "close":
            self._arbs.pop(route, None)
        elif opens and net is not None:
            if current is None and len(self._arbs) >= MAX_TRACKED:
                self._other += 1
                return True
            opened = ts_of(record.get("opened_ts"))
            if opened is None:
                opened = ts if current is None else current.opened_ts
            peak = num_of(record.get("peak_net"))
            if peak is None:
                peak = net if current is None else max(current.peak_net, net)
            self._arbs[route] = Arb(opened, net, num_of(record.get("net_bps")), peak)
        return True

    def _apply_wide(self, record: dict[str, Any], event: str) -> bool:
        key, ts = names_of(record, "instrument", "venue"), ts_of(record.get("ts"))
        if key is None or ts is None:
            return False
        prices = nums_of(record, "bid", "ask", "width_bps")
        if event != "close" and prices is None:
            return False
        self._advance_clock(key[0], ts)
        if event == "close":
            self._wides.pop(key, None)
        elif key not in self._wides and len(self._wides) >= MAX_TRACKED:
            self._other += 1
        elif prices is not None:
            self._wides[key] = Priced(prices[0], prices[1], ts, prices[2])
        return True

    def _advance_clock(self, instrument: str, ts: int) -> None:
        # Outputs advance the clock too: topics are consumed independently, so a spread or
        # signal can be seen before the quote that triggered it (its ts is that quote's clock).
        if instrument in self._clock:
            self._clock[instrument] = max(self._clock[instrument], ts)
        elif len(self._clock) < MAX_TRACKED:
            self._clock[instrument] = ts

    def _clock_age(self, instrument: str, ts: int) -> int | None:
        clock = self._clock.get(instrument)
        return None if clock is None else clock - ts

    def _trim(self, arrivals: deque[list[int]], now_ms: int) -> None:
        while arrivals and arrivals[0][0] <= now_ms - self._rate_window_ms:
            arrivals.popleft()

    def _rate(self, venue: str, now_ms: int) -> float:
        arrivals = self._arrivals[venue]
        self._trim(arrivals, now_ms)
        return sum(count for _, count in arrivals) * 1000 / self._rate_window_ms

    # -- reporting ---------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        return {
            "quotes": dict(self._quotes),
            "spreads": self._spread_count,
            "signals": dict(self._signals),
        }

    def status_line(self, now_ms: int) -> str:
        quotes = " ".join(f"{v} {self._quotes[v]}" for v in self._venues)
        unconfigured = sum(self._quotes.values()) - sum(self._quotes[v] for v in self._venues)
        if unconfigured:
            quotes += f" unconfigured {unconfigured}"
        rate = sum(self._rate(v, now_ms) for v in self._venues)
        arb = f"arb open {len(self._arbs)}"
        if self._arbs:
            (_, buy, sell), best = max(self._arbs.items(), key=lambda item: item[1].net)
            arb += f" (best {buy}>{sell} {best.net:+.2f} USD/oz)"
        signals = " ".join(f"{k} {n}" for k, n in self._signals.items() if n) or "none"
        parts = [
            f"quotes {quotes} ({rate:.1f}/s)",
            f"spreads {self._spread_count}",
            arb,
            f"wide open {len(self._wides)}",
            f"signals {signals}",
        ]
        if self._other:
            parts.append(f"other {self._other}")
        return " | ".join(parts)

    def render(self, now_ms: int) -> RenderableType:
        signals = sum(self._signals.values())
        title = Text(
            f"arbstream live  quotes {sum(self._quotes.values())}  spreads {self._spread_count}"
            f"  signals {signals}  other {self._other}",
            style="bold",
        )
        parts: list[RenderableType] = [title, self._spread_table(), self._arb_table()]
        if self._basis or self._backwardation:  # market structure: only once it is seen
            parts.append(basis_table(self._basis, self._backwardation, self._clock_age))
        if self._delivery:
            parts.append(delivery_table(self._delivery, self._clock_age))
        parts += [self._wide_table(), self._venue_table(now_ms)]
        if self._fx:
            fx = "  ".join(f"{p} {(q.bid + q.ask) / 2:.4f}" for p, q in sorted(self._fx.items()))
            parts.append(Text(f"FX mid  {fx}", style="dim"))
        return Group(*parts)

    def _spread_table(self) -> Table:
        table = new_table("Spreads (a - b, USD/oz)")
        table.add_column("pair")
        for col in ("spread", "bps", *map(window_label, self._windows), "age"):
            table.add_column(col, justify="right")
        rows = sorted(self._spreads.items())
        for (instrument, a, b), s in rows[:MAX_ROWS]:
            zs = [
                Text("" if w not in s.z else f"{s.z[w]:+.2f}", style=z_style(s.z.get(w)))
                for w in self._windows
            ]
            table.add_row(
                f"{instrument} {a}/{b}",
                signed(s.spread, "+.3f"),
                signed(s.spread_bps, "+.1f"),
                *zs,
                age(self._clock_age(instrument, s.ts)),
            )
        footer(table, len(rows), "none yet")
        return table

    def _arb_table(self) -> Table:
        table = new_table("Open arbitrage (net USD/oz)")
        table.add_column("route")
        table.add_column("instrument")
        for col in ("net", "net bps", "peak", "age"):
            table.add_column(col, justify="right")
        rows = sorted(self._arbs.items(), key=lambda item: (-item[1].net, item[0]))
        for (instrument, buy, sell), arb in rows[:MAX_ROWS]:
            table.add_row(
                f"{buy}>{sell}",
                instrument,
                signed(arb.net),
                signed(arb.net_bps, "+.1f"),
                signed(arb.peak_net),
                age(self._clock_age(instrument, arb.opened_ts)),
            )
        footer(table, len(rows), "none open")
        return table

    def _wide_table(self) -> Table:
        table = new_table("Wide markets")
        table.add_column("venue")
        table.add_column("instrument")
        for col in ("bid", "ask", "width bps"):
            table.add_column(col, justify="right")
        rows = sorted(self._wides.items())
        for (instrument, venue), q in rows[:MAX_ROWS]:
            table.add_row(venue, instrument, repr(q.bid), repr(q.ask), f"{q.width_bps:.0f}")
        footer(table, len(rows), "none open")
        return table

    def _session(self, venue: str, instrument: str) -> str:
        calendar, clock = self._calendars.get(venue), self._clock.get(instrument)
        if calendar is None or clock is None:
            return "-"
        return "open" if calendar.is_open(clock) else "closed"

    def _venue_table(self, now_ms: int) -> Table:
        window_s = self._rate_window_ms / 1000
        table = new_table("Venues (last quote as received)")
        table.add_column("venue")
        table.add_column("quotes", justify="right")
        table.add_column(f"ticks/s ({window_s:g}s)", justify="right")
        table.add_column("instrument")
        for col in ("bid", "ask", "clock age", "wall age"):
            table.add_column(col, justify="right")
        sessions = bool(self._calendars)
        if sessions:
            table.add_column("session")
        for venue in self._venues:
            rate = f"{self._rate(venue, now_ms):.1f}/s"
            q = self._last_quote.get(venue)
            if q is None:
                table.add_row(venue, str(self._quotes[venue]), *["-"] * (6 + sessions))
                continue
            wall = "" if q.recv_ts is None else age(now_ms - q.recv_ts)
            session = [self._session(venue, q.instrument)] if sessions else []
            table.add_row(
                venue,
                str(self._quotes[venue]),
                rate,
                q.instrument,
                repr(q.bid),
                repr(q.ask),
                age(self._clock_age(q.instrument, q.ts)),
                wall,
                *session,
            )
        return table
