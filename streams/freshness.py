"""Normalisation and freshness (docs/evaluation.md): the one place the rule is written,
for the engine's evaluation and for the read-only view that metrics take of it.

A quote is normalised to USD per troy ounce with its venue's factor (VAT and unit) and
the mid of the latest FX of its currency; it is fresh at the instrument clock ``t`` when
it is at most its venue's ``stale_ms`` old, its FX at most ``fx_stale_ms``, its venue
not halted, and its venue open at ``t`` (streams.sessions). The normalised bid and ask
are cached on the quote against the FX entry they used, so a quote is normalised again
only when it or its FX changed.
"""

from __future__ import annotations

from typing import Final, cast

from arbstream.streams.sessions import Calendar
from arbstream.streams.state import VenueQuote

#: The FX entry of a USD venue: rate 1 (its time is never read: USD is never FX-stale).
#: Typed ``object``: compiled code keeps it one object, which the cache compares by
#: identity (a tuple-typed constant is boxed anew at each use).
USD_BOOK: Final[object] = (1.0, 0)


def young(t: int, ts: int, stale_ms: int) -> bool:
    """Whether something of time ``ts`` is fresh at clock ``t``: at most ``stale_ms`` old."""
    return t - ts <= stale_ms


def venue_status(
    clock: int | None,
    quote_ts: int | None,
    silent_ms: int | None,
    stale_ms: int,
    calendar: Calendar | None,
    halted: bool = False,
) -> str:
    """A venue's status as a reader of the topics can tell it, by the rule of
    ``mark_fresh`` (FX aside): ``"halted"`` while a halt of it is open; ``"closed"``
    when its session is closed at the
    instrument's ``clock``; ``"stale"`` when it has no quote (``quote_ts`` None), its
    quote is not ``young`` at the clock, or no quote of the instrument at all has arrived
    for ``silent_ms`` > ``stale_ms`` (the clock itself has stopped: every feed silent);
    ``"live"`` otherwise."""
    if halted:
        return "halted"
    if calendar is not None and clock is not None and not calendar.is_open(clock):
        return "closed"
    if clock is None or quote_ts is None or not young(clock, quote_ts, stale_ms):
        return "stale"
    if silent_ms is not None and silent_ms > stale_ms:
        return "stale"
    return "live"


def mark_fresh(
    quotes: dict[str, VenueQuote],
    fx_book: dict[str, tuple[float, int]],
    t: int,
    fx_stale_ms: int,
    sessions: bool = True,
) -> None:
    """Set ``q.fresh`` of every quote in ``quotes`` at clock ``t``, normalising the
    quotes whose quote or FX changed since they were last normalised. A quote whose
    currency has had no FX yet cannot be normalised and is never fresh. ``sessions``
    False says no venue has sessions (all always open): the engine's common case, which
    then costs nothing more."""
    for q in quotes.values():
        pair = q.fx_pair
        # ``book`` is typed ``object`` so compiled code compares the FX entry itself: a
        # value typed as the tuple is unboxed, and boxed anew (a fresh object) to compare.
        book: object
        if pair is None:
            book = USD_BOOK
        else:
            book = fx_book.get(pair)
            if book is None:
                q.fresh = False
                continue
        if book is not q.book:
            mid, fx_ts = cast(tuple[float, int], book)
            k = q.factor / mid
            q.nbid, q.nask, q.book, q.fx_ts = q.bid * k, q.ask * k, book, fx_ts
        q.fresh = (
            young(t, q.ts, q.stale_ms)
            and (pair is None or young(t, q.fx_ts, fx_stale_ms))
            and not q.halted
        )
    if sessions:
        for q in quotes.values():
            if q.fresh and q.calendar is not None and not q.calendar.is_open(t):
                q.fresh = False
