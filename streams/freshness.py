"""Normalisation and freshness (docs/evaluation.md): the one place the rule is written,
for the engine's evaluation and for the read-only view that metrics take of it.

A quote is normalised to USD per troy ounce with its venue's factor (VAT and unit) and
the mid of the latest FX of its currency; it is fresh at the instrument clock ``t`` when
it is at most its venue's ``stale_ms`` old, its FX at most ``fx_stale_ms``, and its
venue open at ``t`` (streams.sessions). The normalised bid and ask are cached on the
quote against the FX entry they used, so a quote is normalised again only when it or its
FX changed.
"""

from __future__ import annotations

from typing import Final, cast

from streams.state import VenueQuote

#: The FX entry of a USD venue: rate 1 (its time is never read: USD is never FX-stale).
#: Typed ``object``: compiled code keeps it one object, which the cache compares by
#: identity (a tuple-typed constant is boxed anew at each use).
USD_BOOK: Final[object] = (1.0, 0)


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
        q.fresh = t - q.ts <= q.stale_ms and (pair is None or t - q.fx_ts <= fx_stale_ms)
    if sessions:
        for q in quotes.values():
            if q.fresh and q.calendar is not None and not q.calendar.is_open(t):
                q.fresh = False
