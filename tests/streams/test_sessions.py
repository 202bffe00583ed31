"""Trading sessions (streams/sessions.py): the open rule, read against an independent,
uncached reading of the same rule; daylight-saving changes; the config errors."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbstream.config import parse_config
from arbstream.streams.errors import ConfigError
from arbstream.streams.sessions import DAY_NAMES, Calendar
from helpers.sessions_reference import reference_open

SHANGHAI = ["09:00-11:30", "13:30-15:00", "21:00-02:30"]
HOLIDAYS = [date(2026, 2, 16), date(2026, 2, 17)]


def ms(tz: str, *local: int) -> int:
    """Epoch ms of a local wall time (fold=0)."""
    return int(datetime(*local, tzinfo=ZoneInfo(tz)).timestamp() * 1000)  # type: ignore[misc]


def test_sessions_over_midnight_belong_to_the_day_they_start() -> None:
    cal = Calendar("Asia/Shanghai", SHANGHAI, None, HOLIDAYS)
    assert cal.is_open(ms("Asia/Shanghai", 2026, 2, 10, 10, 0))  # Tue morning
    assert not cal.is_open(ms("Asia/Shanghai", 2026, 2, 10, 12, 0))  # lunch
    assert cal.is_open(ms("Asia/Shanghai", 2026, 2, 11, 1, 0))  # Tue's night session
    assert not cal.is_open(ms("Asia/Shanghai", 2026, 2, 11, 2, 30))  # end is excluded
    assert cal.is_open(ms("Asia/Shanghai", 2026, 2, 14, 2, 0))  # Sat 02:00: Fri's night
    assert not cal.is_open(ms("Asia/Shanghai", 2026, 2, 15, 1, 0))  # Sun 01:00: Sat is off
    # Mon 16 and Tue 17 Feb are holidays: closed all day, and so are their night
    # sessions (18 Feb 01:00 belongs to the 17th's); Wed 18 trades again.
    assert not cal.is_open(ms("Asia/Shanghai", 2026, 2, 16, 10, 0))
    assert not cal.is_open(ms("Asia/Shanghai", 2026, 2, 17, 1, 0))
    assert not cal.is_open(ms("Asia/Shanghai", 2026, 2, 18, 1, 0))
    assert cal.is_open(ms("Asia/Shanghai", 2026, 2, 18, 9, 0))
    assert cal.is_open(ms("Asia/Shanghai", 2026, 2, 19, 1, 0))


def test_a_session_over_a_daylight_saving_change_reads_wall_times_with_fold_0() -> None:
    # New York springs forward on Sun 8 Mar 2026 at 02:00 (to 03:00); a 02:30 start does
    # not exist that day and is read with the offset before the change (EST, -5).
    cal = Calendar("America/New_York", ["02:30-04:00"], list(DAY_NAMES), [])
    start = int(datetime(2026, 3, 8, 7, 30, tzinfo=UTC).timestamp() * 1000)  # 02:30 EST
    assert not cal.is_open(start - 1)
    assert cal.is_open(start)
    assert cal.is_open(ms("America/New_York", 2026, 3, 8, 3, 45))  # 03:45 EDT
    assert not cal.is_open(ms("America/New_York", 2026, 3, 8, 4, 0))
    # and the fall-back day (1 Nov 2026): 01:30 exists twice; fold=0 is the first (EDT)
    late = Calendar("America/New_York", ["01:30-01:45"], list(DAY_NAMES), [])
    first = int(datetime(2026, 11, 1, 5, 30, tzinfo=UTC).timestamp() * 1000)  # 01:30 EDT
    assert late.is_open(first) and not late.is_open(first + 15 * 60_000)


# ---- the daylight-saving weeks of 2026, bound by bound ---------------------------------
# Expected instants are written in UTC by hand (not derived with zoneinfo), so the table
# checks the time zone handling rather than repeating it. New York moves to EDT (UTC-4)
# on Sun 8 Mar and back to EST (UTC-5) on Sun 1 Nov; London to BST (UTC+1) on Sun 29 Mar
# and back to GMT on Sun 25 Oct. Each row is one bound: closed just before an opening
# and open at it, open just before a closing and closed at it.
OPENS, CLOSES = True, False
DST_BOUNDS = [
    # New York, March: EST until the 8th, EDT from it
    ("ny", "2026-03-01T23:00", OPENS),  # Sun 18:00 EST
    ("ny", "2026-03-02T22:00", CLOSES),  # Mon 17:00 EST
    ("ny", "2026-03-02T23:00", OPENS),  # Mon 18:00 EST
    ("ny", "2026-03-06T22:00", CLOSES),  # Fri 17:00 EST: the weekend
    ("ny", "2026-03-08T22:00", OPENS),  # Sun 18:00 EDT, the day clocks change
    ("ny", "2026-03-09T21:00", CLOSES),  # Mon 17:00 EDT
    ("ny", "2026-03-09T22:00", OPENS),  # Mon 18:00 EDT
    ("ny", "2026-03-13T21:00", CLOSES),  # Fri 17:00 EDT
    # New York, October/November: EDT until the 1st, EST from it
    ("ny", "2026-10-29T21:00", CLOSES),  # Thu 17:00 EDT
    ("ny", "2026-10-29T22:00", OPENS),  # Thu 18:00 EDT
    ("ny", "2026-10-30T21:00", CLOSES),  # Fri 17:00 EDT: the weekend
    ("ny", "2026-11-01T23:00", OPENS),  # Sun 18:00 EST, the day clocks change
    ("ny", "2026-11-02T22:00", CLOSES),  # Mon 17:00 EST
    ("ny", "2026-11-02T23:00", OPENS),  # Mon 18:00 EST
    ("ny", "2026-11-06T22:00", CLOSES),  # Fri 17:00 EST
    # London, March: GMT until the 29th, BST from it
    ("london", "2026-03-27T08:00", OPENS),  # Fri 08:00 GMT
    ("london", "2026-03-27T16:30", CLOSES),  # Fri 16:30 GMT
    ("london", "2026-03-30T07:00", OPENS),  # Mon 08:00 BST
    ("london", "2026-03-30T15:30", CLOSES),  # Mon 16:30 BST
    # London, October: BST until the 25th, GMT from it
    ("london", "2026-10-23T07:00", OPENS),  # Fri 08:00 BST
    ("london", "2026-10-23T15:30", CLOSES),  # Fri 16:30 BST
    ("london", "2026-10-26T08:00", OPENS),  # Mon 08:00 GMT
    ("london", "2026-10-26T16:30", CLOSES),  # Mon 16:30 GMT
]
#: Instants inside a DST week when the venue is closed all the time around them.
DST_CLOSED = [
    ("ny", "2026-03-07T12:00"),  # Saturday
    ("ny", "2026-03-08T06:30"),  # Sunday, 02:30 local does not exist; still the weekend
    ("ny", "2026-10-31T12:00"),  # Saturday
    ("ny", "2026-11-01T05:30"),  # Sunday 01:30, which happens twice
    ("london", "2026-03-29T01:00"),  # Sunday, the instant London changes
    ("london", "2026-03-28T10:00"),  # Saturday
    ("london", "2026-10-25T01:00"),  # Sunday, the instant London changes back
]


_RULES: dict[str, tuple[str, list[str], list[str], list[date]]] = {
    "ny": ("America/New_York", ["18:00-17:00"], ["Sun", "Mon", "Tue", "Wed", "Thu"], []),
    "london": ("Europe/London", ["08:00-16:30"], ["Mon", "Tue", "Wed", "Thu", "Fri"], []),
}


def _utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def _calendar(name: str) -> Calendar:
    tz, sessions, days, holidays = _RULES[name]
    return Calendar(tz, sessions, days, holidays)


@pytest.mark.parametrize(("venue", "utc", "opens"), DST_BOUNDS)
def test_daylight_saving_weeks_at_every_bound(venue: str, utc: str, opens: bool) -> None:
    t = _utc_ms(utc)
    # a calendar asked at the bound alone, and one that has cached the instant before
    assert _calendar(venue).is_open(t) == opens
    walked = _calendar(venue)
    assert walked.is_open(t - 1) == (not opens), "just before the bound"
    assert walked.is_open(t) == opens, "at the bound"
    assert walked.is_open(t + 1) == opens
    assert reference_open(*_RULES[venue], t) == opens  # the direct reading agrees


@pytest.mark.parametrize(("venue", "utc"), DST_CLOSED)
def test_daylight_saving_weekends_stay_closed(venue: str, utc: str) -> None:
    t = _utc_ms(utc)
    for probe in (t - 1, t, t + 1):
        assert not _calendar(venue).is_open(probe)


def test_one_calendar_walked_through_the_dst_weeks_in_order() -> None:
    """As an engine's clock moves: one calendar per venue, every bound in time order."""
    for venue in ("ny", "london"):
        cal = _calendar(venue)
        rows = sorted((_utc_ms(u), o) for v, u, o in DST_BOUNDS if v == venue)
        for t, opens in rows:
            assert cal.is_open(t - 1) == (not opens), (venue, t)
            assert cal.is_open(t) == opens, (venue, t)


TZS = ["Asia/Shanghai", "America/New_York", "Europe/London", "UTC", "Australia/Sydney"]
SESSION = st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 23), st.integers(0, 59))


@settings(max_examples=60, deadline=None)
@given(
    tz=st.sampled_from(TZS),
    sessions=st.lists(SESSION, min_size=1, max_size=3),
    days=st.sets(st.sampled_from(DAY_NAMES), min_size=1),
    seed=st.integers(0, 10_000),
)
def test_the_cached_calendar_agrees_with_the_rule_read_directly(
    tz: str, sessions: list[tuple[int, int, int, int]], days: set[str], seed: int
) -> None:
    texts = [f"{a:02d}:{b:02d}-{c:02d}:{d:02d}" for a, b, c, d in sessions]
    rng = random.Random(seed)
    holidays = [date(2026, 3, 1) + timedelta(days=rng.randrange(40)) for _ in range(5)]
    cal = Calendar(tz, texts, sorted(days), holidays)
    t0 = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1000)
    times = [t0 + rng.randrange(45 * 86_400_000) for _ in range(150)]
    times += sorted(times[:60])  # forward runs, as a clock moves, and jumps back
    for t in times:
        assert cal.is_open(t) == reference_open(tz, texts, sorted(days), holidays, t), t


VENUE = {"currency": "USD", "unit": "oz"}


def _config(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "venues": {"SPOT": dict(VENUE), "FUT": dict(VENUE, expiry=date(2026, 3, 27))},
        "basis": {"pairs": [{"spot": "SPOT", "future": "FUT"}]},
    }
    for path, value in extra.items():
        node = data
        *parents, last = path.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    return data


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"venues__SPOT__timezone": "Asia/Shanghai"}, "venues.SPOT.timezone"),
        ({"venues__SPOT__days": ["Mon"]}, "venues.SPOT.days"),
        ({"venues__SPOT__holidays": [date(2026, 1, 1)]}, "venues.SPOT.holidays"),
        (
            {"venues__SPOT__sessions": ["09:00-17:00"], "venues__SPOT__timezone": "Mars/Olympus"},
            "venues.SPOT.timezone",
        ),
        ({"venues__SPOT__sessions": ["9:00-17:00"]}, "venues.SPOT.sessions[0]"),
        ({"venues__SPOT__sessions": ["24:00-01:00"]}, "venues.SPOT.sessions[0]"),
        (
            {"venues__SPOT__sessions": ["09:00-17:00"], "venues__SPOT__days": ["Monday"]},
            "venues.SPOT.days[0]",
        ),
        ({"venues__SPOT__expiry": date(2026, 6, 1)}, "venues.SPOT.expiry"),
        ({"basis__pairs": [{"spot": "SPOT", "future": "NOPE"}]}, "basis.pairs[0].future"),
        ({"basis__pairs": [{"spot": "FUT", "future": "SPOT"}]}, "basis.pairs[0].future"),
        (
            {"basis__pairs": [{"spot": "SPOT", "future": "FUT"}] * 2},
            "basis.pairs[1]",
        ),
        ({"basis__close_bps": 60}, "basis.close_bps"),
        ({"delivery": {"open_ratio": 0.5, "close_ratio": 0.4}}, "delivery.close_ratio"),
        ({"venues__SPOT__lot": 0}, "venues.SPOT.lot"),
    ],
)
def test_market_structure_config_errors_name_the_key(change: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_config(**change))
    assert f"  {key}:" in str(info.value), str(info.value)


def test_a_good_market_structure_config_loads() -> None:
    config = parse_config(
        _config(venues__SPOT__sessions=SHANGHAI, venues__SPOT__timezone="Asia/Shanghai")
    )
    assert config.basis_pairs == (("SPOT", "FUT"),)
    assert config.expiry_ms["FUT"] == int(datetime(2026, 3, 27, tzinfo=UTC).timestamp() * 1000)
    assert config.calendars["FUT"] is None and config.calendars["SPOT"] is not None
