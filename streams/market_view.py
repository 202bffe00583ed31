"""The market as the committed topics tell it: the one picture that the gateway's page
and subscribers, the terminal dashboard and the demo's summary show.

Fed the records of the ticks, spreads, basis and signals topics (committed, in topic
order per key), it keeps:

* each venue's latest valid quote per instrument (the engine's stateless checks; venues
  of the config only), each instrument's clock (the newest ``ts`` of its quotes and
  outputs, as the engine's clock), and when a quote of it last arrived;
* the latest FX record per pair;
* the latest spread per spread key and the latest basis record per basis key;
* every open signal (the latest ``open``/``update`` per signal key; a ``close`` removes
  it; a level's latest ``cross`` stays), the latest delivery signal per key, open or
  closed (its figures stay shown), and the last ``RECENT_CROSSES`` level crosses;
* counts: quotes per venue, spreads, signals per kind and event, and ``other``: records
  it cannot use (malformed, a venue outside the config, beyond the bounds below).

Each venue's status comes from the engine's own rule (streams.freshness.venue_status):
``halted`` while its halt signal is open, ``closed`` when its session is closed at the
instrument's clock, ``stale`` when its latest quote is older than its ``stale_ms`` on
that clock or when no quote of the instrument has arrived for ``stale_ms`` (every feed
silent, or the broker gone: the clock itself has stopped), ``live`` otherwise. Read
from Kafka alone, a silent feed and a disconnected one look the same.

A quote older than its venue's latest (``ts``) is one the engine rejects: not kept, and
``apply`` says not to forward it. Pure: no Kafka, no network, no clock reads (the caller
passes monotonic seconds); the topics are writable by anyone, so nothing here raises on
a record's content, and its size is bounded by ``MAX_KEYS`` per table, not by how many
records pass.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from arbstream.streams.config import EngineConfig
from arbstream.streams.freshness import venue_status
from arbstream.streams.validation import check

#: Keys kept per table at most, whatever the topics hold: a topic written by a different
#: config must not grow a reader without bound.
MAX_KEYS = 10_000
#: Level crosses kept for "the last crosses".
RECENT_CROSSES = 20


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """One record of a topic, decoded, as subscribers receive it: topic, key (None for
    an unkeyed record), the record and its bytes."""

    topic: str
    key: str | None
    record: dict[str, Any]
    raw: bytes


#: Longer names are malformed: a thousand names of a megabyte each is not "bounded".
MAX_NAME = 64
#: What a record of each kind must carry to be shown: (names, numbers), besides its
#: instrument and ts. Signals by kind (an ``open`` or ``update``; a ``close`` needs the
#: names alone); a kind not listed needs nothing more.
SPREAD_FIELDS = (("a", "b"), ("spread", "spread_bps"))
BASIS_FIELDS = (("spot", "future"), ("basis", "basis_bps", "days"))
SIGNAL_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "arb": (("buy", "sell"), ("net",)),
    "wide": (("venue",), ("bid", "ask", "width_bps")),
    "basis": (("spot", "future"), ()),
    "delivery": (("venue",), ("coverage", "registered", "open_interest")),
    "halt": (("venue",), ()),
    "level": (("venue", "name", "direction"), ("price", "mid")),
}


def _int(value: object) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _names(record: dict[str, Any], *fields: str) -> tuple[str, ...] | None:
    values = tuple(record.get(f) for f in fields)
    if all(type(v) is str and 0 < len(v) <= MAX_NAME for v in values):
        return values  # type: ignore[return-value]
    return None


def number(value: object) -> float | None:
    """``value`` if it is a finite number (not a bool), else None."""
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        return value
    return None


def _well_formed(record: dict[str, Any], names: tuple[str, ...], numbers: tuple[str, ...]) -> bool:
    return _names(record, *names) is not None and all(
        number(record.get(f)) is not None for f in numbers
    )


class MarketView:
    """The latest per key of every kind of record, and the venues' quotes and status."""

    def __init__(self, config: EngineConfig) -> None:
        self._config = config
        #: (instrument, venue) -> the venue's latest quote of the instrument
        self.quotes: dict[tuple[str, str], TopicRecord] = {}
        #: instrument -> the newest ts of its quotes and outputs
        self.clocks: dict[str, int] = {}
        #: instrument -> when (the caller's monotonic seconds) a quote of it last arrived
        self.arrived: dict[str, float] = {}
        self.fx: dict[str, TopicRecord] = {}
        self.spreads: dict[str, TopicRecord] = {}
        self.basis: dict[str, TopicRecord] = {}
        self.open_signals: dict[str, TopicRecord] = {}
        self.delivery: dict[str, TopicRecord] = {}
        #: the last level crosses, oldest first
        self.crosses: deque[TopicRecord] = deque(maxlen=RECENT_CROSSES)
        self.quote_counts: dict[str, int] = dict.fromkeys(sorted(config.venues), 0)
        self.spread_count = 0
        #: "kind.event" -> signals seen
        self.signal_counts: dict[str, int] = {}
        self.other = 0

    # -- taking records -------------------------------------------------------------------

    def apply(self, item: TopicRecord, now_s: float) -> bool:
        """Take one record; return whether to forward it to subscribers (False for a
        record not used: a late quote, an FX record, anything malformed)."""
        record = item.record
        kind = record.get("type")
        if kind == "quote":
            return self._quote(item, now_s)
        if kind == "fx":
            self._fx(item)
            return False
        if kind in ("stock", "status"):  # shown through their delivery and halt signals
            return False
        if item.key is None or not isinstance(item.key, str):
            self.other += 1
            return False
        ok = False
        if kind == "spread":
            ok = self._output(self.spreads, item, SPREAD_FIELDS)
            self.spread_count += ok
        elif kind == "basis":
            ok = self._output(self.basis, item, BASIS_FIELDS)
        elif kind == "signal":
            ok = self._signal(item)
        if not ok:
            self.other += 1
        return ok

    def _quote(self, item: TopicRecord, now_s: float) -> bool:
        record = item.record
        if check(record)[0] is not None or record["venue"] not in self.quote_counts:
            self.other += 1
            return False
        instrument, venue, ts = record["instrument"], record["venue"], record["ts"]
        latest = self.quotes.get((instrument, venue))
        if latest is not None and ts < latest.record["ts"]:
            return False  # the engine rejects it: out of order
        if instrument not in self.clocks and len(self.clocks) >= MAX_KEYS:
            self.other += 1
            return False
        self.quote_counts[venue] += 1
        self.arrived[instrument] = now_s
        self._advance(instrument, ts)
        self.quotes[(instrument, venue)] = item
        return True

    def _fx(self, item: TopicRecord) -> None:
        record = item.record
        pair, ts = record.get("pair"), _int(record.get("ts"))
        if check(record)[0] is not None or type(pair) is not str or ts is None:
            self.other += 1
            return
        latest = self.fx.get(pair)
        if latest is None or ts >= latest.record["ts"]:
            self._put(self.fx, pair, item)

    def _output(
        self,
        table: dict[str, TopicRecord],
        item: TopicRecord,
        fields: tuple[tuple[str, ...], tuple[str, ...]],
    ) -> bool:
        record = item.record
        instrument, ts = _names(record, "instrument"), _int(record.get("ts"))
        if instrument is None or ts is None or not _well_formed(record, *fields):
            return False
        self._advance(instrument[0], ts)
        return self._put(table, item.key or "", item)

    def _signal(self, item: TopicRecord) -> bool:
        record, key = item.record, item.key or ""
        kind, event = _names(record, "kind", "event") or (None, None)
        instrument, ts = _names(record, "instrument"), _int(record.get("ts"))
        if kind is None or event is None or instrument is None or ts is None:
            return False
        names, numbers = SIGNAL_FIELDS.get(kind, ((), ()))
        if not _well_formed(record, names, () if event == "close" else numbers):
            return False
        counted = f"{kind}.{event}"
        if counted in self.signal_counts or len(self.signal_counts) < MAX_KEYS:
            self.signal_counts[counted] = self.signal_counts.get(counted, 0) + 1
        self._advance(instrument[0], ts)
        if kind == "delivery":
            self._put(self.delivery, key, item)
        elif kind == "level":
            self.crosses.append(item)
        if event == "close":
            self.open_signals.pop(key, None)
            return True
        return self._put(self.open_signals, key, item)

    def _advance(self, instrument: str, ts: int) -> None:
        # Outputs move the clock too: topics are read independently, so a spread can be
        # read before the quote that made it (its ts is that quote's clock).
        clock = self.clocks.get(instrument)
        if clock is None:
            if len(self.clocks) < MAX_KEYS:
                self.clocks[instrument] = ts
        elif ts > clock:
            self.clocks[instrument] = ts

    @staticmethod
    def _put(table: dict[str, TopicRecord], key: str, item: TopicRecord) -> bool:
        if key in table or len(table) < MAX_KEYS:
            table[key] = item
            return True
        return False

    # -- the picture ----------------------------------------------------------------------

    def snapshot(self) -> Iterator[TopicRecord]:
        """What a new subscriber is sent first: quotes, spreads, basis, then open
        signals, each in key order."""
        yield from (self.quotes[k] for k in sorted(self.quotes))
        for table in (self.spreads, self.basis, self.open_signals):
            yield from (table[k] for k in sorted(table))

    def levels(self) -> list[dict[str, Any]]:
        """The config's price levels, by instrument and name."""
        levels = [lv for per_venue in self._config.levels.values() for lv in per_venue]
        return [
            {"name": lv.name, "instrument": lv.instrument, "venue": lv.venue,
             "price": lv.price, "band_usd": lv.band_usd}
            for lv in sorted(levels, key=lambda lv: (lv.instrument, lv.name))
        ]  # fmt: skip

    def venue_status(self, now_s: float) -> list[dict[str, Any]]:
        """Every configured venue's status per instrument it has quoted (or once with
        no instrument, before its first quote), at the caller's monotonic ``now_s``."""
        quoted: dict[str, list[tuple[str | None, TopicRecord | None]]] = {}
        for (quoted_instrument, quoted_venue), quote in self.quotes.items():
            quoted.setdefault(quoted_venue, []).append((quoted_instrument, quote))
        config = self._config
        halted = {
            (r["instrument"], r["venue"])
            for r in (item.record for item in self.open_signals.values())
            if r["kind"] == "halt"
        }
        out = []
        for venue in sorted(config.venues):
            calendar, stale_ms = config.calendars.get(venue), config.stale_ms[venue]
            for instrument, item in sorted(quoted.get(venue) or [(None, None)], key=_by_name):
                clock = (
                    self.clocks.get(instrument)
                    if instrument
                    else max(self.clocks.values(), default=None)
                )
                quote_ts = item.record["ts"] if item is not None else None
                arrived = self.arrived.get(instrument) if instrument else None
                silent_ms = None if arrived is None else int((now_s - arrived) * 1000)
                status = venue_status(
                    clock, quote_ts, silent_ms, stale_ms, calendar, (instrument, venue) in halted
                )
                out.append(
                    {
                        "venue": venue,
                        "instrument": instrument,
                        "status": status,
                        "open": status != "closed",
                        "quote_ts": quote_ts,
                        "age_ms": None if clock is None or quote_ts is None else clock - quote_ts,
                        "silent_ms": silent_ms,
                        "stale_ms": stale_ms,
                    }
                )
        return out


def _by_name(row: tuple[str | None, TopicRecord | None]) -> str:
    return row[0] or ""
