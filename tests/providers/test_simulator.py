"""The simulator as a dry run: every message it "sends" is logged and, with ``record``, recorded."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from alertline.errors import ConfigError, TransientError
from alertline.model import Channel
from alertline.providers.base import Batch, BatchItem
from tests.engine_harness import T0, EngineHarness, make_config


async def test_record_file_holds_what_each_recipient_would_receive(
        manual_engine: EngineHarness, tmp_path: Path) -> None:
    record = tmp_path / "sent.jsonl"
    config = make_config(providers={"sim": {"type": "simulator", "record": str(record)}})
    engine = await manual_engine.start(config)
    first = await manual_engine.send(engine, to=["+491701234560", "+491701234561"])
    second = await manual_engine.send(engine, to="+491701234562", channel="voice",
                                      message="Fire — öffnen")
    lines = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    report = await engine.report(first.alert_id)
    ids = {d.recipient.number: d.id for d in report.deliveries}
    assert [(r["alert_id"], r["number"], r["channel"], r["text"]) for r in lines] == [
        (first.alert_id, "+491701234560", "sms", "Water leak"),
        (first.alert_id, "+491701234561", "sms", "Water leak"),
        (second.alert_id, "+491701234562", "voice", "Fire — öffnen"),
    ]
    assert [r["delivery_id"] for r in lines[:2]] == [ids["+491701234560"], ids["+491701234561"]]
    assert {r["at"] for r in lines} == {T0.isoformat()}
    assert set(lines[0]) == {"at", "alert_id", "delivery_id", "number", "channel", "text"}


async def test_each_message_is_logged_at_info(manual_engine: EngineHarness,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="alertline.providers.simulator")
    engine = await manual_engine.start()
    accepted = await manual_engine.send(engine, to="+491701234563", message="Door open")
    lines = [r.getMessage() for r in caplog.records
             if r.name == "alertline.providers.simulator" and r.levelno == logging.INFO]
    assert len(lines) == 1
    assert "sms to +491701234563" in lines[0]
    assert accepted.alert_id in lines[0] and lines[0].endswith(": Door open")


async def test_an_unwritable_record_file_is_a_temporary_failure(
        manual_engine: EngineHarness, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "sent.jsonl"
    sim = manual_engine.simulator(record=str(missing))
    batch = Batch(channel=Channel.SMS, items=(BatchItem(
        delivery_id="d1", alert_id="a1", number="+491701234560", text="x", template="x"),))
    with pytest.raises(TransientError, match="record file"):
        await sim.submit(batch)
    missing.parent.mkdir()
    await sim.submit(batch)
    assert json.loads(missing.read_text())["delivery_id"] == "d1"


def test_record_must_name_a_file() -> None:
    with pytest.raises(ConfigError, match="record"):
        make_config(providers={"sim": {"type": "simulator", "record": ""}})
