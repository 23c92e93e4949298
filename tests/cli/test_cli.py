"""The ``alertline`` command, run as a real process in a scratch directory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from alertline.providers.registry import adapter_types
from alertline.store.sqlite import SqliteStore

SECRET = "hunter2-Very-Secret"
ENV_SECRET = "env-Token-0xC0FFEE"
FAST_SIM = """\
providers:
  sim: {type: simulator, sms_delay: 0.2, voice_delay: 0.3, poll_interval: 0.05, deadline: 1}
"""


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALERTLINE", "PYTEST"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def alertline(cwd: Path, *args: str, env: dict[str, str] | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alertline", *args], cwd=cwd, text=True,
                          capture_output=True, env=env or environment(), timeout=timeout,
                          check=False)


def write_config(tmp_path: Path, text: str, name: str = "alertline.yaml") -> str:
    (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return name


def test_send_delivered_with_the_embedded_defaults(tmp_path: Path) -> None:
    result = alertline(tmp_path, "send", "--to", "+491701234560", "hello")
    assert result.returncode == 0, result.stderr
    assert ": delivered (1 delivered)" in result.stdout
    assert "+491701234560 sms via sim: delivered" in result.stdout
    progress = [line.split() for line in result.stderr.splitlines()
                if "+491701234560" in line and " INFO " not in line]  # the simulator logs each
    assert [words[2] for words in progress] == ["pending", "submitted", "delivered"]
    assert (tmp_path / "alertline.db").exists(), "the store defaults to the working directory"


def test_send_busy_number_fails_naming_the_reason(tmp_path: Path) -> None:
    result = alertline(tmp_path, "send", "--to", "+491701234568", "hello")
    assert result.returncode == 1
    assert ": failed (1 failed)" in result.stdout
    assert "+491701234568 sms via sim: failed: busy" in result.stdout


def test_send_never_final_number_expires(tmp_path: Path) -> None:
    config = write_config(tmp_path, FAST_SIM)
    result = alertline(tmp_path, "send", "-c", config, "--json", "--to", "+491701234569",
                       "--channel", "voice", "hello")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    delivery = report["deliveries"][0]
    assert (report["state"], delivery["state"], delivery["channel"]) == (
        "failed", "expired", "voice")
    assert delivery["reason"] == "no final status before the deadline (last: RINGING)"


def test_send_several_recipients_partially_delivered(tmp_path: Path) -> None:
    config = write_config(tmp_path, FAST_SIM)
    result = alertline(tmp_path, "send", "-c", config, "--to", "+491701234561", "--to",
                       "+491701234568", "--title", "Basement", "hello")
    assert result.returncode == 1
    assert "partially_delivered (1 delivered, 1 failed)" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--to", "+4917012"], "error: to[0]: invalid phone number '+4917012': not a valid number"),
    (["--to", "017012345"], "invalid phone number '017012345': needs an international prefix"),
    (["--to", "alice"], "error: to[0]: unknown contact or group 'alice'"),
    (["--to", "+491701234560", "--provider", "retarus"], "unknown provider 'retarus'"),
    (["--to", "+491701234560", "--id", "has space"], "error: id: 1-128 characters"),
])
def test_bad_input_exits_2_naming_it(tmp_path: Path, args: list[str], message: str) -> None:
    result = alertline(tmp_path, "send", *args, "hello")
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_no_wait_and_status(tmp_path: Path) -> None:
    config = write_config(tmp_path, FAST_SIM)
    sent = alertline(tmp_path, "send", "-c", config, "--no-wait", "--id", "leak-1", "--to",
                     "+491701234560", "hello")
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout) == {"id": "leak-1", "state": "accepted", "deliveries": 1,
                                       "duplicate": False}
    status = alertline(tmp_path, "status", "-c", config, "leak-1", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["id"] == "leak-1"
    unknown = alertline(tmp_path, "status", "-c", config, "nope")
    assert unknown.returncode == 2
    assert "unknown alert 'nope'" in unknown.stderr


async def test_killed_send_resumes_without_a_second_submission(tmp_path: Path) -> None:
    config = write_config(tmp_path, """\
        providers:
          sim: {type: simulator, sms_delay: 2, poll_interval: 0.2}
        """)
    args = ("-m", "alertline", "send", "-c", config, "--id", "leak-9", "--to", "+491701234560",
            "hello")
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=tmp_path, env=environment(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    progress = process.stderr
    assert progress is not None
    seen: list[str] = []

    async def until_submitted() -> None:
        while line := (await progress.readline()).decode():
            seen.append(line)
            if " submitted " in line:
                return
        raise AssertionError(f"send ended before submitting: {seen}")

    try:
        await asyncio.wait_for(until_submitted(), 30)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert process.returncode == -signal.SIGKILL
    db = tmp_path / "alertline.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT state FROM deliveries").fetchall() == [("submitted",)]
        job = conn.execute("SELECT provider_ref FROM deliveries").fetchone()[0]

    again = await asyncio.to_thread(alertline, tmp_path, "send", "-c", config, "--json", "--id",
                                    "leak-9", "--to", "+491701234560", "hello")
    assert again.returncode == 0, again.stderr
    assert "alert leak-9 was already accepted: following it" in again.stderr
    report = json.loads(again.stdout)
    assert report["state"] == "delivered"
    assert report["deliveries"][0]["provider_ref"] == job
    assert report["deliveries"][0]["attempts"] == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM submissions").fetchone() == (1,)
        transitions = conn.execute("SELECT from_state, to_state FROM events WHERE kind='state' "
                                   "ORDER BY seq").fetchall()
    assert transitions == [("pending", "submitted"), ("submitted", "delivered")]


def test_check_config_lists_every_problem_without_secrets(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"""\
        mqtt:
          host: 127.0.0.1
          port: not-a-port
          password: {SECRET}
        providers:
          retarus:
            type: retarus_sms
            username: acme
          voice:
            type: fortytwo_voice
            token: ${{FORTYTWO_TOKEN}}
            caller_id: {SECRET}
        contacts:
          alice: {{phone: "12345"}}
          eve: {{phone: "${{FORTYTWO_TOKEN}}"}}
        routes:
          leak: {{to: [alice, bob], channel: fax}}
        """)
    env = {**environment(), "FORTYTWO_TOKEN": ENV_SECRET}
    result = alertline(tmp_path, "check-config", config, env=env)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("configuration has ") and "problem(s):" in lines[0]
    problems = dict(line.strip().split(": ", 1) for line in lines[1:])
    assert problems["providers.retarus.password"] == "required"
    assert problems["mqtt.port"] == "expected int"
    assert "needs an international prefix" in problems["contacts.alice.phone"]
    assert "unknown channel 'fax'" in problems["routes.leak.channel"]
    assert "contacts.eve.phone" in problems
    output = result.stdout + result.stderr
    assert SECRET not in output and ENV_SECRET not in output


def test_check_config_ok(tmp_path: Path) -> None:
    config = write_config(tmp_path, FAST_SIM + """\
contacts:
  alice: {phone: "+491701234560"}
routes:
  leak: {to: [alice]}
""")
    result = alertline(tmp_path, "check-config", config)
    assert result.returncode == 0, result.stderr
    assert "OK — 1 provider(s), 1 contact(s), 0 group(s), 1 route(s)" in result.stdout


def test_check_config_without_a_file(tmp_path: Path) -> None:
    assert alertline(tmp_path, "check-config").returncode == 2
    missing = alertline(tmp_path, "check-config", "missing.yaml")
    assert missing.returncode == 2 and "cannot read missing.yaml" in missing.stderr


def test_providers_lists_adapter_types_and_options(tmp_path: Path) -> None:
    listing = alertline(tmp_path, "providers")
    assert listing.returncode == 0
    headings = [line.split(":")[0] for line in listing.stdout.splitlines()
                if line and not line.startswith(" ")]
    assert headings == adapter_types()
    assert "- sms_delay (default 1.0): seconds until an SMS is delivered" in listing.stdout
    as_json = json.loads(alertline(tmp_path, "providers", "--json").stdout)
    assert [entry["type"] for entry in as_json] == adapter_types()
    by_type = {entry["type"]: entry for entry in as_json}
    password = next(o for o in by_type["retarus_sms"]["options"] if o["name"] == "password")
    assert (password["required"], password["secret"]) == (True, True)
    assert by_type["simulator"]["capabilities"]["channels"] == ["sms", "voice"]


def test_console_script_and_version(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("alertline")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "alertline 0.1.0"


async def test_send_refuses_a_store_in_use(tmp_path: Path) -> None:
    held = SqliteStore(tmp_path / "alertline.db", exclusive=True)
    await held.open()
    try:
        result = await asyncio.to_thread(alertline, tmp_path, "send", "--to", "+491701234560",
                                         "hello")
    finally:
        await held.close()
    assert result.returncode == 1
    assert "is in use by another alertline process" in result.stderr
