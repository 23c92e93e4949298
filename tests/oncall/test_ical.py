"""Calendar schedules: Nextcloud and Google exports, from a file and over HTTP, refreshed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from alertline.config.sections import validate_config
from alertline.oncall.ical import CalendarLayer
from alertline.oncall.schema import calendar_layers
from tests.oncall.test_schedules import CONTACTS, utc

# As Nextcloud exports it: a VTIMEZONE, local times, a weekly recurring event per person.
NEXTCLOUD = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//IDN nextcloud.com//Calendar app 4.7.6//EN
BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
UID:oncall-alice@nextcloud
DTSTAMP:20260101T000000Z
SUMMARY:On call: Alice
DTSTART;TZID=Europe/Berlin:20260302T090000
DTEND;TZID=Europe/Berlin:20260309T090000
RRULE:FREQ=WEEKLY;INTERVAL=2
END:VEVENT
BEGIN:VEVENT
UID:oncall-bob@nextcloud
DTSTAMP:20260101T000000Z
SUMMARY:On call: Bob
DTSTART;TZID=Europe/Berlin:20260309T090000
DTEND;TZID=Europe/Berlin:20260316T090000
RRULE:FREQ=WEEKLY;INTERVAL=2
END:VEVENT
BEGIN:VEVENT
UID:lunch@nextcloud
DTSTAMP:20260101T000000Z
SUMMARY:Team lunch
DTSTART;TZID=Europe/Berlin:20260304T120000
DTEND;TZID=Europe/Berlin:20260304T130000
END:VEVENT
END:VCALENDAR
"""

# As Google Calendar exports it: UTC times, the person as an attendee, an all-day event.
GOOGLE = """BEGIN:VCALENDAR
PRODID:-//Google Inc//Google Calendar 70.9054//EN
VERSION:2.0
X-WR-TIMEZONE:Europe/Berlin
BEGIN:VEVENT
DTSTART:20260601T070000Z
DTEND:20260602T070000Z
UID:abc123@google.com
ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;CN=carol@example.com:mailto:carol@example.com
SUMMARY:Pager
END:VEVENT
BEGIN:VEVENT
DTSTART;VALUE=DATE:20260603
DTEND;VALUE=DATE:20260604
UID:def456@google.com
SUMMARY:dave
END:VEVENT
END:VCALENDAR
"""


def calendar_config(source: str, **extra: object) -> dict[str, object]:
    return {"contacts": CONTACTS, "schedules": {"cal": {
        "time_zone": "Europe/Berlin", "ical": source, **extra}}}


async def test_nextcloud_export_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "oncall.ics"
    path.write_text(NEXTCLOUD, encoding="utf-8")
    config = validate_config(calendar_config(str(path)), {})
    [layer] = calendar_layers(config.schedules)
    assert await layer.refresh_once()
    schedules = config.schedules
    assert schedules.on_call("cal", utc("2026-03-04T11:30")) == ("alice",), "lunch names nobody"
    assert schedules.on_call("cal", utc("2026-03-09T07:59")) == ("alice",)
    assert schedules.on_call("cal", utc("2026-03-09T08:00")) == ("bob",)
    # the recurrence crosses the spring switch: Mon 30 Mar 09:00 CEST is 07:00 UTC
    view = schedules.get("cal").view(utc("2026-03-25T12:00"))
    assert (view.on_call, view.until) == (("bob",), utc("2026-03-30T07:00"))
    assert view.next[0] == (utc("2026-03-30T07:00"), ("alice",))


async def test_google_export_names_by_attendee_and_all_day_events(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "basic.ics"
    path.write_text(GOOGLE, encoding="utf-8")
    config = validate_config(calendar_config(str(path)), {})
    [layer] = calendar_layers(config.schedules)
    await layer.refresh_once()
    assert config.schedules.on_call("cal", utc("2026-06-01T12:00")) == ("carol",)
    # an all-day event runs from local midnight: 2 June 22:00 UTC
    assert config.schedules.on_call("cal", utc("2026-06-02T21:59")) == ()
    assert config.schedules.on_call("cal", utc("2026-06-02T22:00")) == ("dave",)


async def test_calendar_sits_above_the_rotations_and_below_overrides(tmp_path: Path) -> None:
    path = tmp_path / "oncall.ics"
    path.write_text(GOOGLE, encoding="utf-8")
    config = validate_config(calendar_config(
        str(path), rotations=[{"members": ["bob"], "start": "2026-01-01T00:00", "shift": "1w"}],
        overrides=[{"who": "alice", "from": "2026-06-01T12:00", "to": "2026-06-01T13:00"}]), {})
    await calendar_layers(config.schedules)[0].refresh_once()
    assert config.schedules.on_call("cal", utc("2026-06-01T06:00")) == ("bob",)
    assert config.schedules.on_call("cal", utc("2026-06-01T09:00")) == ("carol",)
    assert config.schedules.on_call("cal", utc("2026-06-01T10:30")) == ("alice",)


@pytest.fixture
async def calendar_server() -> AsyncIterator[tuple[str, list[int | str]]]:
    """A real HTTP server on loopback serving whatever the test puts in ``answers``."""
    answers: list[int | str] = []

    async def serve(request: web.Request) -> web.Response:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, int):
            return web.Response(status=answer)
        return web.Response(text=answer, content_type="text/calendar")

    app = web.Application()
    app.router.add_get("/remote.php/dav/public-calendars/s3cretToken", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/remote.php/dav/public-calendars/s3cretToken", answers
    await runner.cleanup()


async def test_url_is_refreshed_and_a_failed_read_keeps_the_last_copy(
        calendar_server: tuple[str, list[int | str]],
        caplog: pytest.LogCaptureFixture) -> None:
    url, answers = calendar_server
    config = validate_config(calendar_config(url, refresh="15m"), {})
    assert url in config.secrets, "a calendar's secret address is never logged"
    [layer] = calendar_layers(config.schedules)
    assert layer.refresh == 900.0
    answers[:] = [GOOGLE]
    assert await layer.refresh_once()
    assert config.schedules.on_call("cal", utc("2026-06-01T12:00")) == ("carol",)
    answers[:] = [503]
    with caplog.at_level(logging.WARNING, logger="alertline.oncall.ical"):
        assert not await layer.refresh_once()
    assert "HTTP 503" in caplog.text and "keeping the last good copy" in caplog.text
    assert config.schedules.on_call("cal", utc("2026-06-01T12:00")) == ("carol",)
    answers[:] = [NEXTCLOUD]
    assert await layer.refresh_once()
    # the new copy is in use: week 13 of the fortnightly Nextcloud rotation is bob's
    assert config.schedules.on_call("cal", utc("2026-06-01T12:00")) == ("bob",)


async def test_a_broken_calendar_is_refused_and_the_old_one_kept(tmp_path: Path) -> None:
    path = tmp_path / "oncall.ics"
    path.write_text(GOOGLE, encoding="utf-8")
    layer = CalendarLayer("cal", str(path), utc("2026-01-01T00:00").tzinfo,  # type: ignore[arg-type]
                          ["carol"])
    assert await layer.refresh_once(now=datetime(2026, 1, 1, tzinfo=UTC))
    path.write_text("this is not a calendar", encoding="utf-8")
    assert not await layer.refresh_once()
    path.unlink()
    assert not await layer.refresh_once()
    assert layer.spans(utc("2026-06-01T00:00"), utc("2026-06-02T00:00"))[0].on_call == ("carol",)
