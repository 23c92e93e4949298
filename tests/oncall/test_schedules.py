"""Schedules: rotations, restricted layers and overrides, across both Europe/Berlin DST switches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alertline.config.sections import Config, validate_config
from alertline.errors import ConfigError, NotFoundError

BERLIN = "Europe/Berlin"
CONTACTS = {name: {"phone": f"+4917012345{index:02d}"}
            for index, name in enumerate(["alice", "bob", "carol", "dave"])}


def config_with(**schedules: Any) -> Config:
    return validate_config({"contacts": CONTACTS, "schedules": schedules}, {})


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def issue_config() -> Config:
    """The schedule of issue #16, as written there."""
    return config_with(primary={
        "time_zone": BERLIN,
        "rotations": [
            {"members": ["alice", "bob"], "start": "2026-01-05T09:00", "shift": "1w"},
            {"members": ["carol"], "start": "2026-01-05T09:00", "shift": "1d",
             "only": "Mon-Fri 09:00-17:00"}],
        "overrides": [{"who": "dave", "from": "2026-12-24T00:00", "to": "2026-12-27T00:00"}]})


def test_weekly_rotation_hands_off_on_monday_at_nine_local() -> None:
    schedules = issue_config().schedules
    # week 0 (from Mon 5 Jan 09:00 CET) alice, week 1 bob; Sunday night: no weekday layer
    assert schedules.on_call("primary", utc("2026-01-11T22:00")) == ("alice",)
    assert schedules.on_call("primary", utc("2026-01-12T07:59")) == ("alice",)
    assert schedules.on_call("primary", utc("2026-01-12T08:00")) == ("carol",)
    assert schedules.on_call("primary", utc("2026-01-12T16:00")) == ("bob",)
    assert schedules.on_call("primary", utc("2026-01-05T07:00")) == (), "before the start"


def test_later_layer_wins_where_both_cover_and_override_wins_over_all() -> None:
    schedules = issue_config().schedules
    thursday_noon = utc("2026-12-24T11:00")  # Thu 24 Dec 12:00 CET: carol's layer and dave's
    assert schedules.on_call("primary", thursday_noon) == ("dave",)
    assert schedules.on_call("primary", utc("2026-12-23T11:00")) == ("carol",)
    assert schedules.on_call("primary", utc("2026-12-23T20:00")) == ("alice",)


def test_view_of_the_issue_example() -> None:
    view = issue_config().schedules.get("primary").view(utc("2026-12-25T11:00"))
    assert view.to_json() == {
        "schedule": "primary", "at": "2026-12-25T12:00:00+01:00", "on_call": ["dave"],
        "until": "2026-12-27T00:00:00+01:00",
        "next": [
            {"at": "2026-12-27T00:00:00+01:00", "on_call": ["alice"]},
            {"at": "2026-12-28T09:00:00+01:00", "on_call": ["carol"]},
            {"at": "2026-12-28T17:00:00+01:00", "on_call": ["bob"]},
            {"at": "2026-12-29T09:00:00+01:00", "on_call": ["carol"]},
            {"at": "2026-12-29T17:00:00+01:00", "on_call": ["bob"]}]}


@pytest.mark.parametrize(("before", "handoff", "hours"), [
    # spring forward, Sun 29 Mar 2026: 09:00 CET on Saturday, 09:00 CEST on Sunday (23 h)
    ("2026-03-28T12:00", "2026-03-29T07:00", 23),
    # fall back, Sun 25 Oct 2026: 09:00 CEST on Saturday, 09:00 CET on Sunday (25 h)
    ("2026-10-24T12:00", "2026-10-25T08:00", 25),
])
def test_daily_handoff_stays_at_nine_across_dst(before: str, handoff: str, hours: int) -> None:
    schedules = config_with(daily={"time_zone": BERLIN, "rotations": [
        {"members": ["alice", "bob"], "start": "2026-01-01T09:00", "shift": "1d"}]}).schedules
    view = schedules.get("daily").view(utc(before))
    assert view.until == utc(handoff)
    previous = view.next[0][0] - timedelta(hours=hours)
    assert previous.astimezone(schedules.get("daily").zone).hour == 9
    assert view.until.astimezone(schedules.get("daily").zone).hour == 9
    assert schedules.on_call("daily", utc(handoff) - timedelta(seconds=1)) != \
        schedules.on_call("daily", utc(handoff))


@pytest.mark.parametrize(("at", "handoff"), [
    ("2026-03-28T22:00", "2026-03-29T07:00"),  # 21:00 CET -> 09:00 CEST: an 11-hour shift
    ("2026-10-24T21:00", "2026-10-25T08:00"),  # 21:00 CEST -> 09:00 CET: a 13-hour shift
])
def test_twelve_hour_shifts_keep_wall_clock_handoffs(at: str, handoff: str) -> None:
    schedules = config_with(half={"time_zone": BERLIN, "rotations": [
        {"members": ["alice", "bob"], "start": "2026-01-01T09:00", "shift": "12h"}]}).schedules
    assert schedules.get("half").view(utc(at)).until == utc(handoff)


def test_weekday_daytime_layer_follows_local_time_across_dst() -> None:
    schedules = config_with(day={"time_zone": BERLIN, "rotations": [
        {"members": ["alice"], "start": "2026-01-05T00:00", "shift": "1w"},
        {"members": ["carol"], "start": "2026-01-05T00:00", "shift": "1w",
         "only": ["Mon-Fri 09:00-17:00"]}]}).schedules
    # Friday before the spring switch: 09:00 CET = 08:00 UTC; Monday after: 09:00 CEST = 07:00
    assert schedules.on_call("day", utc("2026-03-27T07:59")) == ("alice",)
    assert schedules.on_call("day", utc("2026-03-27T08:00")) == ("carol",)
    assert schedules.on_call("day", utc("2026-03-30T07:00")) == ("carol",)
    assert schedules.on_call("day", utc("2026-03-30T15:00")) == ("alice",)
    # the weekend is alice's
    assert schedules.on_call("day", utc("2026-03-28T10:00")) == ("alice",)
    # Monday after the autumn switch: 09:00 CET = 08:00 UTC again
    assert schedules.on_call("day", utc("2026-10-26T07:30")) == ("alice",)
    assert schedules.on_call("day", utc("2026-10-26T08:00")) == ("carol",)


def test_overnight_window_and_override_with_offset() -> None:
    schedules = config_with(night={
        "time_zone": BERLIN,
        "rotations": [{"members": ["bob"], "start": "2026-01-01T00:00", "shift": "1d",
                       "only": "Mon-Sun 22:00-06:00"}],
        "overrides": [{"who": ["carol", "dave"], "from": "2026-02-01T23:00+00:00",
                       "to": "2026-02-02T01:00+00:00"}]}).schedules
    assert schedules.on_call("night", utc("2026-02-01T20:00")) == ()
    assert schedules.on_call("night", utc("2026-02-01T21:30")) == ("bob",)  # 22:30 local
    assert schedules.on_call("night", utc("2026-02-02T00:00")) == ("carol", "dave")
    assert schedules.on_call("night", utc("2026-02-02T04:59")) == ("bob",)
    assert schedules.on_call("night", utc("2026-02-02T05:00")) == ()


@pytest.mark.parametrize(("schedule", "path", "reason"), [
    ({"rotations": [{"members": ["zoe"], "start": "2026-01-01T00:00", "shift": "1w"}]},
     "schedules.s.rotations.0.members.0", "unknown contact or group 'zoe'"),
    ({"rotations": [{"members": ["alice"], "start": "2026-01-01T00:00", "shift": "3x"}]},
     "schedules.s.rotations.0.shift", "expected a shift length such as 12h, 1d or 1w"),
    ({"rotations": [{"members": ["alice"], "start": "soon", "shift": "1d"}]},
     "schedules.s.rotations.0.start", "expected a date and time such as 2026-01-05T09:00, "
                                      "not 'soon'"),
    ({"rotations": [{"members": ["alice"], "start": "2026-01-01T00:00", "shift": "1d",
                     "only": "Mon-Fry 09:00-17:00"}]},
     "schedules.s.rotations.0.only", "'mon-fry' is not a weekday or a range such as Mon-Fri"),
    ({"overrides": [{"who": "bob", "from": "2026-01-02T00:00", "to": "2026-01-01T00:00"}]},
     "schedules.s.overrides.0.to", "ends before it starts"),
    ({"time_zone": "Mars/Olympus"}, "schedules.s.time_zone",
     "unknown time zone 'Mars/Olympus' (use a name like Europe/Berlin)"),
    ({"ical": "http://calendar.example.com/x.ics"}, "schedules.s.ical",
     "use an https URL (plain http only for localhost)"),
])
def test_bad_schedules_name_the_field(schedule: dict[str, Any], path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_with(s=schedule)
    assert (path, reason) in caught.value.problems


def test_schedule_targets_must_exist() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config({"contacts": CONTACTS, "routes": {"ops": {"to": ["schedule:nope"]}}}, {})
    assert caught.value.problems == [("routes.ops.to.0", "unknown schedule 'nope'")]
    with pytest.raises(NotFoundError, match="unknown schedule 'nope'"):
        config_with().schedules.get("nope")


def test_layers_and_timezone_are_aliases() -> None:
    schedules = config_with(s={"timezone": BERLIN, "layers": [
        {"members": ["alice"], "start": "2026-01-05T09:00", "shift": "1w"}]}).schedules
    assert schedules.on_call("s", utc("2026-01-05T08:00")) == ("alice",)
    assert schedules.on_call("s", utc("2026-01-05T07:59")) == ()


def test_handoff_sets_weekday_and_time_from_a_start_date() -> None:
    schedules = config_with(s={"time_zone": BERLIN, "rotations": [
        {"members": ["alice", "bob"], "start": "2026-01-01", "shift": "1w",
         "handoff": "Wed 10:30"}]}).schedules
    # the first Wednesday 10:30 on or after Thu 1 Jan is 7 Jan: alice, then bob from 14 Jan
    assert schedules.on_call("s", utc("2026-01-07T09:29")) == ()
    assert schedules.on_call("s", utc("2026-01-07T09:30")) == ("alice",)
    assert schedules.get("s").view(utc("2026-01-08T00:00")).until == utc("2026-01-14T09:30")
    with pytest.raises(ConfigError, match="expected a handoff such as 'Mon 09:00'"):
        config_with(s={"rotations": [{"members": ["alice"], "start": "2026-01-01",
                                      "shift": "1d", "handoff": "Someday 9"}]})
