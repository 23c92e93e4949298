"""Restrictions of a rotation to parts of the week, such as ``Mon-Fri 09:00-17:00``.

Times are wall-clock times in the schedule's time zone, so a weekday-daytime layer starts at 09:00
local time on both sides of a daylight-saving switch.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(
    r"^\s*(?:(?P<days>[A-Za-z,\s-]+?)\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$")


@dataclass(frozen=True, slots=True)
class Window:
    """A daily time range on some weekdays; ``end`` <= ``start`` runs past midnight."""

    days: frozenset[int]
    start: timedelta
    end: timedelta

    def occurrences(self, first: datetime, last: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The window's local (naive) ranges that overlap ``[first, last)``, clipped to it."""
        day = first.date() - timedelta(days=1)
        while day <= last.date():
            if day.weekday() in self.days:
                midnight = datetime.combine(day, time())
                begin = midnight + self.start
                end = midnight + self.end + (timedelta(days=1) if self.end <= self.start
                                             else timedelta())
                begin, end = max(begin, first), min(end, last)
                if begin < end:
                    yield begin, end
            day += timedelta(days=1)


def _clock(text: str, *, allow_24: bool) -> timedelta:
    hours, minutes = (int(part) for part in text.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not allow_24)):
        raise ValueError(f"{text!r} is not a time of day (00:00 to 23:59)")
    return timedelta(hours=hours, minutes=minutes)


def _days(text: str | None) -> frozenset[int]:
    if text is None:
        return frozenset(range(7))
    days: set[int] = set()
    for part in (p.strip().lower() for p in text.split(",")):
        names = [n.strip()[:3] for n in part.split("-")]
        if len(names) > 2 or any(n not in DAY_NAMES for n in names):
            raise ValueError(f"{part!r} is not a weekday or a range such as Mon-Fri")
        first, last = DAY_NAMES.index(names[0]), DAY_NAMES.index(names[-1])
        days.update((first + offset) % 7 for offset in range((last - first) % 7 + 1))
    return frozenset(days)


def parse_window(text: str) -> Window:
    """``Mon-Fri 09:00-17:00``, ``Sat,Sun 00:00-24:00``, ``22:00-06:00`` (every day)."""
    match = _WINDOW.match(text)
    if not match:
        raise ValueError(f"{text!r} is not like 'Mon-Fri 09:00-17:00'")
    start = _clock(match["start"], allow_24=False)
    end = _clock(match["end"], allow_24=True)
    if start == end:
        raise ValueError(f"{text!r} is an empty time range")
    return Window(days=_days(match["days"]), start=start, end=end)
