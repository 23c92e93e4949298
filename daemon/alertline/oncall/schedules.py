"""Who is on call: rotations, restricted layers, calendars and overrides, as spans of time.

Every part of a schedule answers one question — which spans of time in a window it covers, and who
is on call in each (:class:`Span`). A later layer wins over an earlier one where both cover a time,
a calendar sits above the rotations, and an override wins over all. Handoffs and restrictions are
wall-clock times in the schedule's time zone: a weekly handoff stays at Monday 09:00 local time
across a daylight-saving switch (that shift is an hour shorter or longer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from alertline.errors import NotFoundError
from alertline.oncall.restrictions import Window

SCHEDULE_PREFIX = "schedule:"
HORIZON = timedelta(days=28)
NEXT_COUNT = 5


@dataclass(frozen=True, slots=True)
class Span:
    """From ``start`` (inclusive) to ``end`` (exclusive), UTC, ``on_call`` is on call."""

    start: datetime
    end: datetime
    on_call: tuple[str, ...]


class Layer(Protocol):
    """A part of a schedule that covers some spans of time."""

    def spans(self, first: datetime, last: datetime) -> list[Span]:
        """The spans overlapping ``[first, last)`` (UTC), clipped to it, in order."""


def to_utc(local: datetime, zone: tzinfo) -> datetime:
    """A naive wall-clock time in ``zone`` as UTC (a time skipped by DST moves forward)."""
    return local.replace(tzinfo=zone).astimezone(UTC)


def to_local(when: datetime, zone: tzinfo) -> datetime:
    """``when`` as a naive wall-clock time in ``zone``."""
    return when.astimezone(zone).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class Rotation:
    """Members take turns, each for ``shift``, from ``start`` (local), inside ``only`` windows."""

    members: tuple[str, ...]
    start: datetime
    shift: timedelta
    zone: tzinfo
    only: tuple[Window, ...] = ()

    def spans(self, first: datetime, last: datetime) -> list[Span]:
        """Each shift's span (cut to the restriction windows) overlapping ``[first, last)``."""
        begin, end = to_local(first, self.zone), to_local(last, self.zone)
        # one day's slack each side: the naive wall clock repeats or skips an hour at a switch
        begin, end = max(begin - timedelta(days=1), self.start), end + timedelta(days=1)
        if begin >= end:
            return []
        index = int((begin - self.start) / self.shift)
        result: list[Span] = []
        while (shift_start := self.start + index * self.shift) < end:
            member = (self.members[index % len(self.members)],)
            shift_end = shift_start + self.shift
            ranges = ([(shift_start, shift_end)] if not self.only else sorted(
                r for w in self.only for r in w.occurrences(shift_start, shift_end)))
            for local_start, local_end in ranges:
                span = Span(max(to_utc(local_start, self.zone), first),
                            min(to_utc(local_end, self.zone), last), member)
                if span.start < span.end:
                    result.append(span)
            index += 1
        return result


@dataclass(frozen=True, slots=True)
class FixedSpans:
    """Spans given outright: overrides."""

    items: tuple[Span, ...]

    def spans(self, first: datetime, last: datetime) -> list[Span]:
        """The given spans overlapping ``[first, last)``, clipped."""
        return [Span(max(s.start, first), min(s.end, last), s.on_call) for s in self.items
                if s.start < last and s.end > first]


@dataclass(frozen=True, slots=True)
class OnCallView:
    """Who is on call at ``at``, until when, and the next changes."""

    schedule: str
    at: datetime
    on_call: tuple[str, ...]
    until: datetime | None
    next: tuple[tuple[datetime, tuple[str, ...]], ...]
    zone: tzinfo

    def to_json(self) -> dict[str, Any]:
        """The JSON form of ``alertline oncall --json`` and ``alertline/oncall/<name>``."""
        def iso(when: datetime | None) -> str | None:
            return when.astimezone(self.zone).isoformat() if when is not None else None

        return {"schedule": self.schedule, "at": iso(self.at), "on_call": list(self.on_call),
                "until": iso(self.until),
                "next": [{"at": iso(at), "on_call": list(who)} for at, who in self.next]}


@dataclass(slots=True)
class Schedule:
    """Layers in rising priority (rotations, then a calendar), then overrides over all."""

    name: str
    zone: ZoneInfo
    layers: list[Layer] = field(default_factory=list)
    overrides: FixedSpans = field(default_factory=lambda: FixedSpans(()))

    def _parts(self) -> list[Layer]:
        return [*self.layers, self.overrides]

    def on_call(self, at: datetime) -> tuple[str, ...]:
        """Who is on call at ``at`` (empty: nobody)."""
        return self._who(at, [p.spans(at, at + timedelta(seconds=1)) for p in self._parts()])

    @staticmethod
    def _who(at: datetime, spans_by_part: Sequence[Sequence[Span]]) -> tuple[str, ...]:
        for spans in reversed(spans_by_part):
            covering = [s.on_call for s in spans if s.start <= at < s.end]
            if covering:
                return tuple(dict.fromkeys(name for who in covering for name in who))
        return ()

    def view(self, at: datetime, horizon: timedelta = HORIZON,
             count: int = NEXT_COUNT) -> OnCallView:
        """Who is on call at ``at``, until when, and up to ``count`` changes within ``horizon``."""
        last = at + horizon
        spans_by_part = [p.spans(at, last) for p in self._parts()]
        edges = sorted({edge for spans in spans_by_part for s in spans
                        for edge in (s.start, s.end) if at < edge < last})
        current = self._who(at, spans_by_part)
        changes: list[tuple[datetime, tuple[str, ...]]] = []
        previous = current
        for edge in edges:
            who = self._who(edge, spans_by_part)
            if who != previous:
                changes.append((edge, who))
                previous = who
                if len(changes) >= count:
                    break
        return OnCallView(schedule=self.name, at=at, on_call=current,
                          until=changes[0][0] if changes else None, next=tuple(changes),
                          zone=self.zone)


@dataclass(slots=True)
class Schedules:
    """Every configured schedule by name; resolves ``schedule:<name>`` targets."""

    by_name: dict[str, Schedule] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def get(self, name: str) -> Schedule:
        """The schedule ``name``; NotFoundError if there is none."""
        try:
            return self.by_name[name]
        except KeyError:
            raise NotFoundError(f"unknown schedule {name!r}") from None

    def on_call(self, name: str, at: datetime) -> tuple[str, ...]:
        """Who is on call in schedule ``name`` at ``at``."""
        return self.get(name).on_call(at)


def schedule_name(target: str) -> str | None:
    """``primary`` for the target ``schedule:primary``; None for any other target."""
    return target[len(SCHEDULE_PREFIX):] if target.startswith(SCHEDULE_PREFIX) else None


def views(schedules: Mapping[str, Schedule], at: datetime) -> list[OnCallView]:
    """Every schedule's view at ``at``, by name."""
    return [schedules[name].view(at) for name in sorted(schedules)]
