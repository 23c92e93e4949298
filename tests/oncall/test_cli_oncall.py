"""``alertline oncall [NAME] [--at TIME] [--json]`` on a real configuration file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alertline.cli.main import main
from tests.oncall.test_ical import GOOGLE

CONFIG = """
contacts:
  alice: {phone: "+491701234560"}
  bob: {phone: "+491701234561"}
  carol: {phone: "+491701234562"}
  dave: {phone: "+491701234563"}
schedules:
  primary:
    time_zone: Europe/Berlin
    rotations:
      - {members: [alice, bob], start: "2026-01-05T09:00", shift: 1w}
      - {members: [carol], start: "2026-01-05T09:00", shift: 1d, only: "Mon-Fri 09:00-17:00"}
    overrides:
      - {who: dave, from: "2026-12-24T00:00", to: "2026-12-27T00:00"}
  calendar:
    time_zone: Europe/Berlin
    ical: CALENDAR
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    calendar = tmp_path / "oncall.ics"
    calendar.write_text(GOOGLE, encoding="utf-8")
    path = tmp_path / "alertline.yaml"
    path.write_text(CONFIG.replace("CALENDAR", str(calendar)), encoding="utf-8")
    return path


def test_json_of_one_schedule_as_the_issue_shows(config_file: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["oncall", "primary", "--at", "2026-12-25T12:00", "--json",
                 "-c", str(config_file)])
    shown = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {k: shown[k] for k in ("schedule", "at", "on_call", "until")} == {
        "schedule": "primary", "at": "2026-12-25T12:00:00+01:00", "on_call": ["dave"],
        "until": "2026-12-27T00:00:00+01:00"}
    assert shown["next"][:2] == [{"at": "2026-12-27T00:00:00+01:00", "on_call": ["alice"]},
                                 {"at": "2026-12-28T09:00:00+01:00", "on_call": ["carol"]}]


def test_every_schedule_as_text_reads_the_calendar(config_file: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["oncall", "--at", "2026-06-01T14:00+02:00", "-c", str(config_file)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "calendar: carol until Tue 2026-06-02 09:00 CEST"
    assert "primary: carol until Mon 2026-06-01 17:00 CEST" in lines


def test_unknown_schedule_and_bad_time_are_clear_errors(
        config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["oncall", "nope", "-c", str(config_file)]) == 2
    assert "unknown schedule 'nope'" in capsys.readouterr().err
    assert main(["oncall", "primary", "--at", "tomorrow", "-c", str(config_file)]) == 2
    assert "--at: expected a time such as 2026-12-25T12:00" in capsys.readouterr().err


# Issue #16, point 5: this configuration works as written.
ISSUE_YAML = """
schedules:
  primary:
    time_zone: Europe/Berlin
    rotations:
      - {members: [alice, bob], start: "2026-01-05T09:00", shift: 1w}
      - {members: [carol], start: "2026-01-05T09:00", shift: 1d, only: "Mon-Fri 09:00-17:00"}
    overrides:
      - {who: dave, from: "2026-12-24T00:00", to: "2026-12-27T00:00"}
  calendar:
    ical: /etc/alertline/oncall.ics          # or an https URL; refresh: 15m
heartbeats:
  backup: {period: 1d, grace: 2h, route: ops, message: "Nightly backup did not report"}
watch: {every: 5m, after: 2, route: ops-fallback}
"""
AROUND_IT = """
contacts:
  alice: {phone: "+491701234560"}
  bob: {phone: "+491701234561"}
  carol: {phone: "+491701234562"}
  dave: {phone: "+491701234563"}
routes:
  ops: {to: ["schedule:primary"]}
  ops-fallback: {to: ["schedule:primary"], channel: [sms, voice]}
"""


def test_the_issue_configuration_works_as_written(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "alertline.yaml"
    path.write_text(ISSUE_YAML + AROUND_IT, encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    assert ": OK" in capsys.readouterr().out
    assert main(["oncall", "primary", "--at", "2026-12-25T12:00", "--json",
                 "-c", str(path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert set(shown) == {"schedule", "at", "on_call", "until", "next"}
    assert (shown["schedule"], shown["on_call"]) == ("primary", ["dave"])


def test_send_to_a_calendar_schedule_reads_the_calendar_first(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC)
    calendar = tmp_path / "now.ics"
    calendar.write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:now@test\r\nDTSTAMP:{now:%Y%m%dT%H%M%SZ}\r\nSUMMARY:Carol\r\n"
        f"DTSTART:{now - timedelta(days=1):%Y%m%dT%H%M%SZ}\r\n"
        f"DTEND:{now + timedelta(days=1):%Y%m%dT%H%M%SZ}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n", encoding="utf-8")
    record = tmp_path / "sent.jsonl"
    path = tmp_path / "alertline.yaml"
    path.write_text(f"""
store: {{path: {tmp_path / "alertline.db"}}}
providers:
  sim: {{type: simulator, sms_delay: 0.01, poll_interval: 0.01, record: {record}}}
contacts:
  carol: {{phone: "+491701234562"}}
schedules:
  cal: {{ical: {calendar}}}
""", encoding="utf-8")
    assert main(["send", "--to", "schedule:cal", "--json", "-c", str(path), "Disk full"]) == 0
    [sent] = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    assert (sent["number"], sent["text"]) == ("+491701234562", "Disk full")
