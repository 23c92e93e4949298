"""Quiet hours: windows in which deliveries wait (or a provider gets blackout periods).

A window is daily (``HH:MM/HH:MM`` in a time zone, possibly across midnight) or absolute (an ISO
8601 interval). The validators here check the configuration's and the requests' windows and zones;
:class:`QuietWindow` answers when a window ends and which of its occurrences overlap a span.
:class:`~alertline.engine.policy.Policy` applies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import voluptuous as vol

_DAILY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)/([01]\d|2[0-3]):([0-5]\d)$")


# -- validators (used by the config schema and the request parser) ----------------------------

def quiet_window(value: Any) -> str:
    """A quiet-hours window: daily ``HH:MM/HH:MM`` or an ISO 8601 interval ``start/end``."""
    text = value.strip() if isinstance(value, str) else None
    if text is None or (_DAILY.fullmatch(text) is None and _interval(text, UTC) is None):
        raise vol.Invalid(f"{value!r} is neither a daily window HH:MM/HH:MM (e.g. 22:00/07:00) "
                          "nor an ISO 8601 interval start/end")
    return text


def is_quiet_window(value: Any) -> bool:
    """Whether :func:`quiet_window` accepts ``value``."""
    try:
        quiet_window(value)
    except vol.Invalid:
        return False
    return True


def time_zone(value: Any) -> str:
    """An IANA time zone name such as ``Europe/Berlin``."""
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise vol.Invalid(f"unknown time zone {value!r} (use a name like Europe/Berlin)") from None
    return str(value)


def _interval(text: str, zone: tzinfo) -> tuple[datetime, datetime] | None:
    """An ISO 8601 ``start/end`` interval (naive times in ``zone``), None if it is not one."""
    if text.count("/") != 1:
        return None
    try:
        start, end = (datetime.fromisoformat(part.strip().replace("Z", "+00:00"))
                      for part in text.split("/"))
    except ValueError:
        return None
    start, end = (t if t.tzinfo else t.replace(tzinfo=zone) for t in (start, end))
    return (start, end) if end > start else None


# -- quiet hours ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class QuietWindow:
    """One quiet-hours window in its time zone, with the setting it came from."""

    text: str
    rule: str
    zone: ZoneInfo

    def _spans(self, around: datetime, days: int) -> list[tuple[datetime, datetime]]:
        """The window's occurrences (UTC) from the day before ``around`` for ``days`` days."""
        absolute = _interval(self.text, self.zone)
        if absolute is not None:
            return [(absolute[0].astimezone(UTC), absolute[1].astimezone(UTC))]
        match = _DAILY.fullmatch(self.text)
        assert match is not None
        start = time(int(match.group(1)), int(match.group(2)))
        end = time(int(match.group(3)), int(match.group(4)))
        today = around.astimezone(self.zone).date()
        spans = []
        for offset in range(-1, days):
            day = today + timedelta(days=offset)
            begins = _local(day, start, self.zone)
            ends = _local(day + timedelta(days=1) if end <= start else day, end, self.zone)
            spans.append((begins, ends))
        return spans

    def end_if_inside(self, at: datetime) -> datetime | None:
        """When this window ends, if ``at`` lies inside it."""
        for begins, ends in self._spans(at, 1):
            if begins <= at < ends:
                return ends
        return None

    def periods(self, start: datetime, horizon: timedelta) -> list[str]:
        """Occurrences overlapping ``[start, start + horizon)`` as ISO 8601 intervals."""
        days = horizon.days + 2
        return [f"{_iso(b, self.zone)}/{_iso(e, self.zone)}" for b, e in self._spans(start, days)
                if e > start and b < start + horizon]


def _local(day: date, clock_time: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock_time, tzinfo=zone).astimezone(UTC)


def _iso(when: datetime, zone: ZoneInfo) -> str:
    return when.astimezone(zone).isoformat(timespec="milliseconds")
