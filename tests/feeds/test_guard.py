"""Reconnect backoff and the per-stream duplicate and sequence guard."""

from __future__ import annotations

import itertools
import random
from typing import Any

from arbstream.feeds.guard import StreamGuard, Verdict
from arbstream.streams.backoff import backoff


def _quote(ts: int, bid: float = 78.5, seq: int | None = None, venue: str = "B") -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "quote",
        "venue": venue,
        "instrument": "XAG",
        "bid": bid,
        "ask": bid + 0.04,
        "ts": ts,
    }
    if seq is not None:
        record["seq"] = seq
    return record


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    delays = list(itertools.islice(backoff(3.0, 0.1, random.Random(7)), 200))
    ceilings = [min(3.0, 0.1 * 2**n) for n in range(200)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) <= 3.0 and max(delays[10:]) > 2.0  # reaches the cap, never beyond
    assert len(set(delays)) == 200  # jittered: no two feeds retry in lockstep


def test_identical_record_after_reconnect_is_a_duplicate() -> None:
    guard = StreamGuard()
    assert guard.check(_quote(1000)) is Verdict.ACCEPT
    assert guard.check(_quote(1000)) is Verdict.DUPLICATE
    assert guard.check(_quote(1000, bid=78.6)) is Verdict.ACCEPT  # same time, new price
    assert guard.check(_quote(1000, venue="C")) is Verdict.ACCEPT  # another stream


def test_sequence_numbers_that_do_not_advance_are_dropped() -> None:
    guard = StreamGuard()
    assert guard.check(_quote(1000, seq=10)) is Verdict.ACCEPT
    assert guard.check(_quote(1100, seq=11)) is Verdict.ACCEPT
    assert guard.check(_quote(1000, bid=70.0, seq=10)) is Verdict.DUPLICATE  # replayed
    assert guard.check(_quote(1100, bid=71.0, seq=11)) is Verdict.DUPLICATE
    assert guard.check(_quote(1500, seq=40)) is Verdict.ACCEPT  # increasing mode: no gap


def test_contiguous_mode_counts_gaps_and_accepts_restarted_numbering() -> None:
    guard = StreamGuard("contiguous")
    assert guard.check(_quote(1000, seq=1)) is Verdict.ACCEPT
    assert guard.check(_quote(1100, seq=2)) is Verdict.ACCEPT
    assert guard.check(_quote(1200, seq=5)) is Verdict.GAP
    # the venue restarted: numbers go back, event time goes on
    assert guard.check(_quote(1300, seq=1)) is Verdict.RESTART
    assert guard.check(_quote(1400, seq=2)) is Verdict.ACCEPT


def test_fx_streams_are_per_pair() -> None:
    guard = StreamGuard()
    fx = {"type": "fx", "pair": "USDCNY", "bid": 7.1, "ask": 7.2, "ts": 5}
    assert guard.check(fx) is Verdict.ACCEPT
    assert guard.check(dict(fx)) is Verdict.DUPLICATE
    assert guard.check({**fx, "pair": "USDINR"}) is Verdict.ACCEPT
