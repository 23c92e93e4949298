"""``create_engine``: the one assembly of store, redactor, providers and engine that the daemon,
the CLI and Home Assistant share; one redactor masks every secret wherever it would show."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertline import (
    MASK,
    Config,
    ConfigError,
    DeliveryState,
    NotFoundError,
    RejectedError,
    SqliteStore,
    StoreBusyError,
    account_config,
    create_engine,
    parse_request,
    remove_store,
    validate_config,
)
from alertline.clock import ManualClock
from alertline.engine.scheduler import ManualScheduler
from tests.engine_harness import SIM_OPTIONS, T0, ScriptedProvider

RETARUS_PASSWORD = "Retarus-S3cret-pa55"
MQTT_PASSWORD = "mqtt-pa55word"
AM_TOKEN = "am-token-4711"
POSTBACK_TOKEN = "postback-token-0815"
WEBHOOK_ID = "f3c1e2d4b5a69788a0b1c2d3e4f5a6b7"


def _config(store: Path, **sections: Any) -> Config:
    data: dict[str, Any] = {
        "store": {"path": str(store)},
        "providers": {"sim": dict(SIM_OPTIONS),
                      "retarus": {"type": "retarus_sms", "username": "acme",
                                  "password": RETARUS_PASSWORD}},
        "defaults": {"provider": "sim"},
        **sections}
    return validate_config(data, {})


async def test_the_daemon_owns_the_configured_store(tmp_path: Path) -> None:
    config = _config(tmp_path / "daemon.db")
    callback = "http://127.0.0.1:8787/postbacks/{provider}/token"
    engine = create_engine(config, callback_base_url=callback)
    await engine.start()
    try:
        assert isinstance(engine.store, SqliteStore)
        assert engine.store.path == str(tmp_path / "daemon.db")
        assert set(engine.providers) == {"sim", "retarus"}
        assert {p.context.callback_base_url for p in engine.providers.values()} == {callback}
        second = create_engine(config)  # a second daemon on the same store is refused
        with pytest.raises(StoreBusyError):
            await second.start()
    finally:
        await engine.stop()


async def test_the_cli_reads_a_store_a_running_daemon_holds(tmp_path: Path) -> None:
    config = _config(tmp_path / "shared.db")
    daemon = create_engine(config)
    await daemon.start()
    accepted = await daemon.accept(parse_request({"to": "+491701234560", "message": "Leak"}))
    status = create_engine(config, exclusive=False)  # ``alertline status``
    await status.store.open()
    try:
        report = await status.report(accepted.alert_id)
        assert report.alert.id == accepted.alert_id
        with pytest.raises(NotFoundError):
            await status.report("no-such-alert")
    finally:
        await status.store.close()
        await daemon.stop()


async def test_home_assistant_hands_in_its_store_path_http_client_and_secrets(
        tmp_path: Path) -> None:
    config = _config(tmp_path / "ignored.db")
    async with httpx.AsyncClient() as http:
        engine = create_engine(config, store=tmp_path / "entry.db", http=http,
                               secrets=[WEBHOOK_ID])
        assert isinstance(engine.store, SqliteStore)
        assert engine.store.path == str(tmp_path / "entry.db")
        assert {id(p.context.http) for p in engine.providers.values()} == {id(http)}
        assert WEBHOOK_ID not in engine.redactor.text(f"/api/webhook/{WEBHOOK_ID}")
        await engine.start()
        await engine.stop()


def test_one_redactor_serves_the_engine_and_every_provider(tmp_path: Path) -> None:
    config = _config(tmp_path / "a.db", mqtt={"host": "broker", "password": MQTT_PASSWORD},
                     alertmanager={"token": AM_TOKEN},
                     http={"postback_token": POSTBACK_TOKEN})
    engine = create_engine(config, secrets=[WEBHOOK_ID])
    assert {id(p.context.redactor) for p in engine.providers.values()} == {id(engine.redactor)}
    leaked = engine.redactor.text(
        f"retarus {RETARUS_PASSWORD}, mqtt {MQTT_PASSWORD}, am {AM_TOKEN}, "
        f"postbacks {POSTBACK_TOKEN}, webhook {WEBHOOK_ID}")
    for secret in (RETARUS_PASSWORD, MQTT_PASSWORD, AM_TOKEN, POSTBACK_TOKEN, WEBHOOK_ID):
        assert secret not in leaked
    assert leaked.count(MASK) == 5


async def test_a_failure_reason_in_a_report_never_shows_a_host_secret(tmp_path: Path) -> None:
    """The reason the engine writes into a report is masked with the host's secrets too (the
    engine's own second redactor knew only the configuration's)."""
    clock = ManualClock(T0)
    refusing = ScriptedProvider("sim", clock, error=RejectedError(
        "sim", f"callback /api/webhook/{WEBHOOK_ID} refused"))
    engine = create_engine(_config(tmp_path / "a.db"), clock=clock,
                           scheduler=ManualScheduler(clock), providers={"sim": refusing},
                           secrets=[WEBHOOK_ID])
    await engine.start()
    try:
        accepted = await engine.accept(parse_request({"to": "+491701234560",
                                                      "message": "Leak"}))
        await engine.drain()
        report = await engine.report(accepted.alert_id)
    finally:
        await engine.stop()
    [delivery] = report.deliveries
    assert delivery.state is DeliveryState.REJECTED
    assert delivery.reason is not None
    assert WEBHOOK_ID not in delivery.reason
    assert MASK in delivery.reason


def test_an_account_config_for_a_host_without_yaml(tmp_path: Path) -> None:
    config = account_config(
        "fortytwo_voice", {"token": "ft-token-123456"}, store_path=str(tmp_path / "e.db"),
        contacts={"alice": {"phone": "+491701234560"}}, groups={"oncall": ["alice"]},
        routes={"leak": {"to": ["oncall"]}, "night": {"to": ["alice"],
                                                      "quiet_hours": ["23:00/06:00"]}},
        quiet_hours=["22:00/07:00"], allow=["+49*"], per_hour={"voice": 5},
        timezone="Europe/Berlin")
    assert config.default_channel.value == "voice"  # a voice-only provider calls
    assert config.default_provider == "fortytwo_voice"
    assert config.http["enabled"] is False
    assert config.store_path == str(tmp_path / "e.db")
    assert config.routes["leak"].quiet_hours == ("22:00/07:00",)  # the default
    assert config.routes["night"].quiet_hours == ("23:00/06:00",)  # its own
    assert config.limits["allow"] == ["+49*"]
    assert config.limits["per_hour"]["voice"] == 5
    assert "ft-token-123456" in config.secrets


def test_an_account_config_reads_no_environment(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME_SECRET", "from-the-environment")
    with pytest.raises(ConfigError):
        account_config("retarus_sms", {"username": "acme", "password": "${HOME_SECRET}"},
                       store_path=str(tmp_path / "e.db"))


async def test_removing_a_store_removes_its_companion_files(tmp_path: Path) -> None:
    engine = create_engine(_config(tmp_path / "gone.db"))
    await engine.start()
    await engine.accept(parse_request({"to": "+491701234560", "message": "Leak"}))
    await engine.stop()
    assert sorted(os.listdir(tmp_path))[0] == "gone.db"
    remove_store(tmp_path / "gone.db")
    assert os.listdir(tmp_path) == []
