"""A schedule layer read from an iCalendar file or URL (a Nextcloud or Google calendar export).

Each event is a span of on-call time; its summary (``Alice``, ``On call: Alice``) or an attendee
(common name or the address before ``@``) names the contact. Recurring events are expanded with
``recurring-ical-events``. The calendar is read again every ``refresh``; when a read fails the last
good copy stays in use, so a flaky calendar server never leaves a schedule empty.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import icalendar
import recurring_ical_events

from alertline.oncall.schedules import Span, to_utc

_LOGGER = logging.getLogger(__name__)
MAX_CALENDAR_BYTES = 10 * 1024 * 1024


class CalendarError(Exception):
    """The calendar could not be read or parsed (the message names the schedule)."""


def is_url(source: str) -> bool:
    """Whether ``source`` is fetched over HTTP(S) rather than read from a file."""
    return source.startswith(("https://", "http://"))


def parse_calendar(text: bytes | str) -> icalendar.Calendar:
    """A calendar from iCalendar text (``ValueError`` if it is not one)."""
    calendar = icalendar.Calendar.from_ical(text)
    if not isinstance(calendar, icalendar.Calendar):
        raise ValueError("not a VCALENDAR")
    return calendar


class CalendarLayer:
    """The on-call spans of one iCalendar source, matched to the configured contacts."""

    def __init__(self, schedule: str, source: str, zone: ZoneInfo, contacts: Collection[str],
                 refresh: float = 900.0) -> None:
        self.schedule = schedule
        self.source = source
        self._path = None if is_url(source) else Path(source).expanduser()
        self.zone = zone
        self.refresh = refresh
        self._contacts = {name.lower(): name for name in contacts}
        self._calendar: icalendar.Calendar | None = None
        self._warned: set[str] = set()
        self.loaded_at: datetime | None = None

    @property
    def loaded(self) -> bool:
        """Whether a calendar was read at least once."""
        return self._calendar is not None

    def load_text(self, text: bytes | str, now: datetime | None = None) -> None:
        """Use the calendar in ``text`` from now on (CalendarError if it is not valid)."""
        try:
            self._calendar = parse_calendar(text)
        except ValueError as err:
            raise CalendarError(f"schedule {self.schedule}: not an iCalendar file: {err}") from None
        self.loaded_at = now or datetime.now(UTC)

    async def read(self, http: httpx.AsyncClient | None = None) -> bytes:
        """The calendar's text from its file or URL (CalendarError if it cannot be read)."""
        try:
            if self._path is not None:
                return await asyncio.to_thread(self._path.read_bytes)
            if http is not None:
                response = await http.get(self.source, follow_redirects=True)
            else:
                async with httpx.AsyncClient(timeout=30.0) as client:
                    response = await client.get(self.source, follow_redirects=True)
        except OSError as err:
            raise CalendarError(f"schedule {self.schedule}: cannot read the calendar file: "
                                f"{err.strerror or err}") from None
        except httpx.HTTPError as err:
            raise CalendarError(f"schedule {self.schedule}: cannot fetch the calendar: "
                                f"{type(err).__name__}") from None
        if response.status_code != 200:
            raise CalendarError(f"schedule {self.schedule}: the calendar URL answered "
                                f"HTTP {response.status_code}")
        if len(response.content) > MAX_CALENDAR_BYTES:
            raise CalendarError(f"schedule {self.schedule}: the calendar is larger than "
                                f"{MAX_CALENDAR_BYTES} bytes")
        return response.content

    async def refresh_once(self, http: httpx.AsyncClient | None = None,
                           now: datetime | None = None) -> bool:
        """Read the calendar again; on failure keep the last good one and log why (False)."""
        try:
            text = await self.read(http)
            calendar = await asyncio.to_thread(parse_calendar, text)
        except (CalendarError, ValueError) as err:
            _LOGGER.warning("%s (keeping the last good copy)", err)
            return False
        self._calendar = calendar
        self.loaded_at = now or datetime.now(UTC)
        return True

    def spans(self, first: datetime, last: datetime) -> list[Span]:
        """The events overlapping ``[first, last)``, clipped, each with the contacts it names."""
        if self._calendar is None:
            return []
        result = []
        query = recurring_ical_events.of(self._calendar)
        for event in query.between(first - timedelta(days=1), last + timedelta(days=1)):
            start, end = self._when(event)
            names = self._names(event)
            if not names or start >= last or end <= first:
                continue
            result.append(Span(max(start, first), min(end, last), names))
        return sorted(result, key=lambda s: (s.start, s.end))

    def _when(self, event: Any) -> tuple[datetime, datetime]:
        start = self._utc(event.get("DTSTART").dt)
        end_field = event.get("DTEND")
        end = self._utc(end_field.dt) if end_field is not None else start + (
            event.get("DURATION").dt if event.get("DURATION") is not None else timedelta(days=1))
        return start, end

    def _utc(self, value: date | datetime) -> datetime:
        """An event time as UTC: floating times and all-day dates are in the schedule's zone."""
        if not isinstance(value, datetime):
            return to_utc(datetime.combine(value, time()), self.zone)
        if value.tzinfo is None:
            return to_utc(value, self.zone)
        return value.astimezone(UTC)

    def _names(self, event: Any) -> tuple[str, ...]:
        summary = str(event.get("SUMMARY") or "").strip()
        found = [name for key, name in self._contacts.items()
                 if summary.lower() == key or re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])",
                                                        summary.lower())]
        attendees = event.get("ATTENDEE") or []
        for attendee in attendees if isinstance(attendees, list) else [attendees]:
            common = str(attendee.params.get("CN", "")).strip().lower()
            local = str(attendee).split(":", 1)[-1].split("@", 1)[0].strip().lower()
            for candidate in (common, local):
                if candidate in self._contacts:
                    found.append(self._contacts[candidate])
        if not found and summary not in self._warned:
            self._warned.add(summary)
            _LOGGER.warning("schedule %s: calendar event %r names no configured contact; "
                            "ignored", self.schedule, summary)
        return tuple(dict.fromkeys(found))
