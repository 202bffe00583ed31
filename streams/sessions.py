"""Trading sessions: whether a venue is open at an event time (docs/evaluation.md).

A venue with ``sessions`` is open at ``t`` (epoch ms, read as local time in its
``timezone``) when ``t`` lies in ``[start, end)`` of a session that started on a local
day whose weekday is in ``days`` and whose date is not a holiday. A session whose end is
not after its start ends on the next local day. Session bounds are instants: a wall time
that does not exist, or exists twice, at a daylight-saving change is read with the
offset in force before the change (``fold=0``).

Time zone arithmetic is costly next to the engine's per-tick work, so a calendar keeps
the answer with the instants between which it holds, and computes again only when asked
about a time outside them: a venue changes state a few times a day.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEKDAYS: Final = DAY_NAMES[:5]
_SESSION = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
#: Days around ``t`` whose sessions a calendar looks at: one before (a session over
#: midnight) and enough after to find the next change across a long holiday.
_DAYS_BEFORE: Final = 1
_DAYS_AFTER: Final = 16
_DAY_MS: Final = 86_400_000


def session_problems(key: str, venue: Any) -> list[str]:
    """The config errors of a venue's session keys, one ``  key: message`` line each."""
    problems = []
    if venue.sessions is None:
        for name in ("timezone", "days", "holidays"):
            if getattr(venue, name) not in (None, []):
                problems.append(f"  {key}.{name}: only with sessions")
        return problems
    if venue.timezone is not None:
        try:
            ZoneInfo(venue.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"  {key}.timezone: unknown time zone {venue.timezone!r}")
    for i, session in enumerate(venue.sessions):
        if _SESSION.match(session) is None:
            problems.append(f"  {key}.sessions[{i}]: {session!r} is not HH:MM-HH:MM")
    for i, day in enumerate(venue.days or []):
        if day not in DAY_NAMES:
            problems.append(f"  {key}.days[{i}]: {day!r} is not one of {', '.join(DAY_NAMES)}")
    return problems


def expiry_ms(day: date) -> int:
    """00:00 UTC of ``day``, in epoch ms."""
    return int(datetime.combine(day, time(), UTC).timestamp() * 1000)


class Calendar:
    """When one venue is open (see the module docstring)."""

    __slots__ = ("_from", "_open", "_sessions", "_tz", "_until", "days", "holidays")

    def __init__(
        self,
        timezone: str | None,
        sessions: list[str],
        days: list[str] | None,
        holidays: list[date],
    ) -> None:
        self._tz = ZoneInfo(timezone or "UTC")
        self._sessions: list[tuple[time, time]] = []
        for session in sessions:
            match = _SESSION.match(session)
            if match is None:
                raise ValueError(f"malformed session {session!r}")
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            self._sessions.append((time(h1, m1), time(h2, m2)))
        self.days = frozenset(DAY_NAMES.index(d) for d in (days if days is not None else WEEKDAYS))
        self.holidays = frozenset(holidays)
        self._from = self._until = 0  # the cached answer holds for t in [_from, _until)
        self._open = False

    def is_open(self, t: int) -> bool:
        """Whether the venue is open at event time ``t`` (epoch ms)."""
        if self._from <= t < self._until:
            return self._open
        self._compute(t)
        return self._open

    def _compute(self, t: int) -> None:
        today = datetime.fromtimestamp(t / 1000, self._tz).date()
        first = today - timedelta(days=_DAYS_BEFORE)
        intervals = []
        for n in range(_DAYS_BEFORE + _DAYS_AFTER + 1):
            day = first + timedelta(days=n)
            if day.weekday() not in self.days or day in self.holidays:
                continue
            for start, end in self._sessions:
                end_day = day if end > start else day + timedelta(days=1)
                intervals.append((self._instant(day, start), self._instant(end_day, end)))
        # The union of the intervals, as sorted boundaries: open between even and odd ones.
        intervals.sort()
        merged: list[list[int]] = []
        for a, b in intervals:
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        bounds = [x for pair in merged for x in pair]
        # Complete from today's 00:00 (a session lasts at most a day, so none from before
        # ``first`` reaches into today) to the day after the last one looked at.
        known_from = self._instant(today, time())
        known_until = self._instant(first + timedelta(days=_DAYS_BEFORE + _DAYS_AFTER), time())
        i = bisect_right(bounds, t)
        self._open = i % 2 == 1
        self._from = max(bounds[i - 1], known_from) if i > 0 else known_from
        self._until = bounds[i] if i < len(bounds) else known_until
        if self._from > t or self._until <= t:  # outside the horizon: answer for t alone
            self._from, self._until = t, t + 1

    def _instant(self, day: date, at: time) -> int:
        local = datetime.combine(day, at, self._tz)  # fold=0: the offset before a change
        return int(local.timestamp() * 1000)
