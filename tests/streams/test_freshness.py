"""Normalisation is cached against the FX book entry a quote used (streams/freshness.py):
a quote is normalised again only when it or its currency's FX changed. The cache is
compared by identity, which compiled code keeps only if the entry stays one object (a
value typed as a plain tuple is unboxed and boxed anew, and the cache never hits)."""

from __future__ import annotations

from arbstream.streams.freshness import USD_BOOK, mark_fresh
from arbstream.streams.state import VenueQuote


def _quotes() -> dict[str, VenueQuote]:
    return {
        "COMEX": VenueQuote(30.0, 30.2, 1_000, 1.0, None, 5_000),
        # CNY per kg with 13% VAT: factor 1 / 1.13 / 32.1507466
        "SGE": VenueQuote(7_800.0, 7_820.0, 1_000, 1 / 1.13 / 32.1507466, "USDCNY", 5_000),
    }


def test_a_quote_keeps_the_fx_entry_it_was_normalised_with_until_it_changes() -> None:
    quotes = _quotes()
    book = {"USDCNY": (7.1, 900)}
    mark_fresh(quotes, book, 1_000, 60_000)
    sge, comex = quotes["SGE"], quotes["COMEX"]
    assert sge.book is book["USDCNY"]
    assert comex.book == USD_BOOK
    assert sge.nbid == 7_800.0 / 1.13 / 32.1507466 / 7.1
    assert sge.fresh and comex.fresh

    # unchanged FX: the cached figures stay (a changed bid is not seen until the quote
    # is marked as changed, which is what the engine does on every accepted quote)
    sge.bid, comex.bid = 7_900.0, 30.1
    mark_fresh(quotes, book, 1_001, 60_000)
    assert sge.nbid == 7_800.0 / 1.13 / 32.1507466 / 7.1
    assert comex.nbid == 30.0

    # new FX (a new entry object): normalised again, with the new rate
    book["USDCNY"] = (7.2, 1_001)
    mark_fresh(quotes, book, 1_001, 60_000)
    assert sge.book is book["USDCNY"]
    assert sge.nbid == 7_900.0 / 1.13 / 32.1507466 / 7.2


def test_freshness_follows_quote_age_fx_age_and_missing_fx() -> None:
    quotes = _quotes()
    mark_fresh(quotes, {}, 1_000, 60_000)
    assert quotes["COMEX"].fresh and not quotes["SGE"].fresh  # no USDCNY yet

    book = {"USDCNY": (7.1, 0)}
    mark_fresh(quotes, book, 6_000, 60_000)
    assert quotes["COMEX"].fresh and quotes["SGE"].fresh  # both exactly stale_ms old
    mark_fresh(quotes, book, 6_001, 60_000)
    assert not quotes["COMEX"].fresh and not quotes["SGE"].fresh

    quotes = _quotes()
    mark_fresh(quotes, book, 1_000, 999)  # FX 1,000 ms old, fx_stale_ms 999
    assert quotes["COMEX"].fresh  # USD has no FX to go stale
    assert not quotes["SGE"].fresh
