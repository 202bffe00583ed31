"""The session rule of docs/evaluation.md read directly, with no cache and no interval
arithmetic: the independent reading the engine's calendars are tested against."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def reference_open(
    tz: str, sessions: list[str], days: list[str], holidays: list[date], t: int
) -> bool:
    """Whether a session of a trading day (today or yesterday, for one over midnight)
    holds t in its [start, end)."""
    zone = ZoneInfo(tz)
    today = datetime.fromtimestamp(t / 1000, zone).date()
    for day in (today - timedelta(days=1), today):
        if DAY_NAMES[day.weekday()] not in days or day in holidays:
            continue
        for session in sessions:
            start_s, end_s = session.split("-")
            sh, sm = map(int, start_s.split(":"))
            eh, em = map(int, end_s.split(":"))
            start = datetime(day.year, day.month, day.day, sh, sm, tzinfo=zone)
            end_day = day if (eh, em) > (sh, sm) else day + timedelta(days=1)
            end = datetime(end_day.year, end_day.month, end_day.day, eh, em, tzinfo=zone)
            if start.timestamp() * 1000 <= t < end.timestamp() * 1000:
                return True
    return False
