"""The market as the gateway last saw it: what a new subscriber is sent first.

It keeps, from the committed output topics and the ticks topic:

* the latest spread record per spread key, and the latest basis record per basis key;
* every open signal (the latest ``open``/``update`` record per signal key; a ``close``
  removes it);
* each venue's latest quote (per instrument and venue), and each instrument's clock
  (the newest ``ts`` of its quotes, as the engine's clock);

and derives each venue's status from the config: ``closed`` when its trading session
is closed at the instrument's clock (docs/evaluation.md, sessions), ``stale`` when its
latest quote is older than its ``stale_ms`` on that clock, or when no quote of the
instrument at all has arrived for ``stale_ms`` of wall-clock time (every feed silent,
or the broker gone: the instrument's clock itself has stopped), ``live`` otherwise.
The gateway reads Kafka only, so a silent feed and a disconnected one look the same.

A quote older than the venue's latest (``ts``) is one the engine rejects: it is not
kept, and not forwarded.

Its size is bounded by the config (pairs, routes, venues, instruments), not by how
many records pass. Pure: no Kafka, no network.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from streams.config import EngineConfig

#: Keys kept per record kind at most, whatever the topics hold: a topic written by a
#: different config must not grow the gateway without bound.
MAX_KEYS = 10_000


@dataclass(frozen=True)
class Entry:
    """One record as a subscriber receives it: topic, key and the record's bytes."""

    topic: str
    key: str | None
    record: dict[str, Any]
    raw: bytes


class MarketView:
    """The latest per key of every output kind, and the venues' quotes."""

    def __init__(
        self,
        config: EngineConfig,
        spreads: str,
        signals: str,
        basis: str,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._monotonic = monotonic
        #: instrument -> when (monotonic) a quote of it last arrived
        self.arrived: dict[str, float] = {}
        self._spreads_topic, self._signals_topic, self._basis_topic = spreads, signals, basis
        self.spreads: dict[str, Entry] = {}
        self.basis: dict[str, Entry] = {}
        self.open_signals: dict[str, Entry] = {}
        self.quotes: dict[tuple[str, str], Entry] = {}
        self.clocks: dict[str, int] = {}

    def apply(self, entry: Entry) -> bool:
        """Take one record (committed, in topic order per key); False when it is one
        not to forward (a quote older than its venue's latest)."""
        record, key = entry.record, entry.key
        kind = record.get("type")
        if kind == "quote":
            instrument, venue, ts = record["instrument"], record["venue"], record["ts"]
            latest = self.quotes.get((instrument, venue))
            if latest is not None and ts < latest.record["ts"]:
                return False
            if instrument in self.clocks or len(self.clocks) < MAX_KEYS:
                self.arrived[instrument] = self._monotonic()
                if ts > self.clocks.get(instrument, -1):
                    self.clocks[instrument] = ts
            self._put(self.quotes, (instrument, venue), entry)
        elif key is None:
            return True
        elif kind == "spread":
            self._put(self.spreads, key, entry)
        elif kind == "basis":
            self._put(self.basis, key, entry)
        elif kind == "signal":
            if record.get("event") == "close":
                self.open_signals.pop(key, None)
            else:
                self._put(self.open_signals, key, entry)
        return True

    @staticmethod
    def _put(table: dict[Any, Entry], key: Any, entry: Entry) -> None:
        if key in table or len(table) < MAX_KEYS:
            table[key] = entry

    def snapshot(self) -> Iterator[Entry]:
        """Quotes, spreads, basis, then open signals, each in key order."""
        yield from (self.quotes[k] for k in sorted(self.quotes))
        for table in (self.spreads, self.basis, self.open_signals):
            yield from (table[k] for k in sorted(table))

    def venue_status(self) -> list[dict[str, Any]]:
        """Every configured venue's status per instrument it has quoted (or once with
        no instrument, before its first quote)."""
        quoted: dict[str, list[tuple[str | None, Entry | None]]] = {}
        for (quoted_instrument, quoted_venue), quote in self.quotes.items():
            quoted.setdefault(quoted_venue, []).append((quoted_instrument, quote))
        out = []
        now = self._monotonic()
        for venue in sorted(self._config.venues):
            calendar = self._config.calendars.get(venue)
            stale_ms = self._config.stale_ms[venue]
            rows = quoted.get(venue) or [(None, None)]
            for instrument, entry in sorted(rows, key=lambda r: r[0] or ""):
                clock = (
                    self.clocks.get(instrument)
                    if instrument
                    else max(self.clocks.values(), default=None)
                )
                is_open = calendar is None or clock is None or calendar.is_open(clock)
                quote_ts = entry.record.get("ts") if entry else None
                age = clock - quote_ts if clock is not None and isinstance(quote_ts, int) else None
                arrived = self.arrived.get(instrument) if instrument else None
                silent = None if arrived is None else int((now - arrived) * 1000)
                if not is_open:
                    status = "closed"
                elif age is None or age > stale_ms or (silent is not None and silent > stale_ms):
                    status = "stale"
                else:
                    status = "live"
                out.append(
                    {
                        "venue": venue,
                        "instrument": instrument,
                        "status": status,
                        "open": is_open,
                        "quote_ts": quote_ts,
                        "age_ms": age,
                        "silent_ms": silent,
                        "stale_ms": stale_ms,
                    }
                )
        return out
