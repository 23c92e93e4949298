"""The ``schedules`` section: its voluptuous schema, and :class:`Schedules` built from it."""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import voluptuous as vol

from alertline.oncall.ical import CalendarLayer, is_url
from alertline.oncall.restrictions import Window, parse_window
from alertline.oncall.schedules import (
    FixedSpans,
    Layer,
    Rotation,
    Schedule,
    Schedules,
    Span,
    to_local,
    to_utc,
)

_SHIFT = re.compile(r"^\s*(\d+)\s*(h|d|w|hours?|days?|weeks?)\s*$", re.I)
_REFRESH = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")


def shift_length(value: Any) -> timedelta:
    """``1w``, ``1d``, ``12h`` (also ``2 weeks``): the length of one shift."""
    match = _SHIFT.match(str(value))
    if not match or int(match.group(1)) == 0:
        raise vol.Invalid("expected a shift length such as 12h, 1d or 1w")
    unit = match.group(2)[0].lower()
    return timedelta(hours=int(match.group(1)) * {"h": 1, "d": 24, "w": 168}[unit])


def refresh_seconds(value: Any) -> float:
    """``15m``, ``1h``, ``300`` (seconds): how often a calendar is read again (at least 60 s)."""
    match = _REFRESH.match(str(value))
    if not match:
        raise vol.Invalid("expected a period such as 15m or 1h")
    seconds = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2) or "s"]
    if seconds < 60:
        raise vol.Invalid("refresh a calendar at most once a minute")
    return float(seconds)


def local_time(value: Any) -> datetime:
    """``2026-01-05T09:00`` (wall clock in the schedule's zone) or with an offset."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise vol.Invalid(f"expected a date and time such as 2026-01-05T09:00, not {value!r}") \
            from None


def zone_name(value: Any) -> str:
    """An IANA time zone name such as ``Europe/Berlin``."""
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise vol.Invalid(f"unknown time zone {value!r} (use a name like Europe/Berlin)") from None
    return str(value)


def window(value: Any) -> Window:
    """A restriction such as ``Mon-Fri 09:00-17:00``."""
    try:
        return parse_window(str(value))
    except ValueError as err:
        raise vol.Invalid(str(err)) from None


def calendar_source(value: Any) -> str:
    """A calendar file path, or an https URL (plain http only to this machine, for tests)."""
    text = str(value).strip()
    if text.startswith("http://") and not re.match(r"^http://(127\.0\.0\.1|localhost|\[::1\])[:/]",
                                                   text):
        raise vol.Invalid("use an https URL (plain http only for localhost)")
    if not text:
        raise vol.Invalid("expected a file path or an https URL")
    return text


def _names(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise vol.Invalid("expected a contact, group or number, or a list of them")
    return list(items)


def _restrictions(value: Any) -> list[Window]:
    return [window(v) for v in ([value] if isinstance(value, str) else value)]


_HANDOFF = re.compile(r"^\s*(?:([A-Za-z]{3})[a-z]*\s+)?(\d{1,2}):(\d{2})\s*$")


def handoff(value: Any) -> tuple[int | None, time]:
    """``Mon 09:00`` or ``09:00``: the weekday (None: any) and wall-clock time of handoffs."""
    match = _HANDOFF.match(str(value))
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    if not match or (match.group(1) and match.group(1).lower() not in days) or \
            int(match.group(2)) > 23 or int(match.group(3)) > 59:
        raise vol.Invalid("expected a handoff such as 'Mon 09:00' or '09:00'")
    day = days.index(match.group(1).lower()) if match.group(1) else None
    return day, time(int(match.group(2)), int(match.group(3)))


def first_handoff(start: datetime, at: tuple[int | None, time]) -> datetime:
    """The first time at or after ``start`` that is on the handoff's weekday and time."""
    day, clock = at
    candidate = datetime.combine(start.date(), clock)
    while candidate < start or (day is not None and candidate.weekday() != day):
        candidate += timedelta(days=1)
    return candidate


ROTATION_SCHEMA = vol.Schema({
    vol.Required("members"): _names,
    vol.Required("start"): local_time,
    vol.Required("shift"): shift_length,
    vol.Optional("handoff"): handoff,
    vol.Optional("only"): _restrictions,
})

OVERRIDE_SCHEMA = vol.Schema({
    vol.Required("who"): _names,
    vol.Required("from"): local_time,
    vol.Required("to"): local_time,
})


def _rotations_or_layers(data: Any) -> Any:
    """``layers`` is another name for ``rotations``; ``timezone`` for ``time_zone``."""
    if isinstance(data, dict):
        data = dict(data)
        if "layers" in data and "rotations" not in data:
            data["rotations"] = data.pop("layers")
        if "timezone" in data and "time_zone" not in data:
            data["time_zone"] = data.pop("timezone")
    return data


SCHEDULE_SCHEMA = vol.All(_rotations_or_layers, vol.Schema({
    vol.Optional("time_zone", default="UTC"): zone_name,
    vol.Optional("rotations", default=[]): [ROTATION_SCHEMA],
    vol.Optional("overrides", default=[]): [OVERRIDE_SCHEMA],
    vol.Optional("ical"): calendar_source,
    vol.Optional("refresh", default="15m"): refresh_seconds,
}))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")


def duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"5m"``, ``"2h"``, ``"1d"``, ``"1w"``."""
    match = None if isinstance(value, bool) else _DURATION.match(str(value))
    if not match:
        raise vol.Invalid("expected a duration such as 30s, 5m, 2h or 1d")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2) or "s"]
    return float(match.group(1)) * unit


def _positive(value: float) -> float:
    if value <= 0:
        raise vol.Invalid("must be longer than zero")
    return value


def _route_or_to(data: dict[str, Any]) -> dict[str, Any]:
    if not data.get("route") and not data.get("to"):
        raise vol.Invalid("give a route or to (whom a missed heartbeat pages)")
    return data


HEARTBEAT_SCHEMA = vol.All(vol.Schema({
    vol.Required("period"): vol.All(duration, _positive),
    vol.Optional("grace", default=0.0): duration,
    vol.Optional("route"): str,
    vol.Optional("to"): _names,
    vol.Optional("message"): vol.All(str, vol.Length(min=1, max=1000)),
    vol.Optional("token"): vol.All(str, vol.Length(min=16, msg="at least 16 characters")),
}), _route_or_to)

WATCH_SCHEMA = vol.Schema({
    vol.Optional("every", default=300.0): vol.All(duration, vol.Range(
        min=10, msg="check at most every 10 seconds")),
    vol.Optional("after", default=2): vol.All(int, vol.Range(min=1, max=100)),
    vol.Optional("route"): vol.Any(str, None),
    vol.Optional("enabled", default=True): bool,
})


def schedule_targets(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Every ``(path, name)`` a schedule pages (for the config's reference check)."""
    found = [(f"rotations.{i}.members.{j}", name) for i, r in enumerate(raw["rotations"])
             for j, name in enumerate(r["members"])]
    found += [(f"overrides.{i}.who.{j}", name) for i, o in enumerate(raw["overrides"])
              for j, name in enumerate(o["who"])]
    return found


def schedule_problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems a schema cannot see: an override that ends before it starts."""
    zone = ZoneInfo(raw["time_zone"])
    return [(f"overrides.{i}.to", "ends before it starts") for i, o in enumerate(raw["overrides"])
            if _utc(o["to"], zone) <= _utc(o["from"], zone)]


def _utc(value: datetime, zone: ZoneInfo) -> datetime:
    """A configured time as UTC: without an offset it is wall-clock time in ``zone``."""
    return to_utc(value, zone) if value.tzinfo is None else value.astimezone(UTC)


def build_schedule(name: str, raw: dict[str, Any], contacts: Collection[str]) -> Schedule:
    """A :class:`Schedule` from its validated section."""
    zone = ZoneInfo(raw["time_zone"])
    layers: list[Layer] = []
    for rotation in raw["rotations"]:
        start = rotation["start"]
        start = to_local(start, zone) if start.tzinfo is not None else start
        if rotation.get("handoff"):
            start = first_handoff(start, rotation["handoff"])
        layers.append(Rotation(
            members=tuple(rotation["members"]),
            start=start,
            shift=rotation["shift"], zone=zone, only=tuple(rotation.get("only") or ())))
    if raw.get("ical"):
        layers.append(CalendarLayer(name, raw["ical"], zone, contacts, raw["refresh"]))
    overrides = FixedSpans(tuple(Span(_utc(o["from"], zone), _utc(o["to"], zone), tuple(o["who"]))
                                 for o in raw["overrides"]))
    return Schedule(name=name, zone=zone, layers=layers, overrides=overrides)


def build_schedules(raw: dict[str, Any], contacts: Collection[str]) -> Schedules:
    """Every schedule of the validated ``schedules`` section."""
    return Schedules({name: build_schedule(name, section, contacts)
                      for name, section in raw.items()})


def calendar_layers(schedules: Schedules) -> list[CalendarLayer]:
    """The calendar layers to read (and refresh) before answering who is on call."""
    return [layer for schedule in schedules.by_name.values() for layer in schedule.layers
            if isinstance(layer, CalendarLayer)]


__all__ = ["HEARTBEAT_SCHEMA", "SCHEDULE_SCHEMA", "WATCH_SCHEMA", "build_schedules",
           "calendar_layers", "is_url", "schedule_problems", "schedule_targets"]
