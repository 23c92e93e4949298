"""The on-call service on a manual clock: a schedule is republished at each handoff."""

from __future__ import annotations

import json
from typing import Any

from alertline.mqtt.topics import Topics
from alertline.oncall.service import OnCallService
from tests.engine_harness import EngineHarness, make_config


async def test_schedule_is_republished_at_each_handoff(manual_engine: EngineHarness) -> None:
    # T0 is 2026-01-01 12:00 UTC; shifts of 12 h from 06:00: alice until 18:00, then bob
    engine = await manual_engine.start(make_config(
        contacts={"alice": {"phone": "+491701234560"}, "bob": {"phone": "+491701234561"}},
        schedules={"ops": {"rotations": [{"members": ["alice", "bob"],
                                          "start": "2026-01-01T06:00", "shift": "12h"}]}}))
    published: list[tuple[str, dict[str, Any]]] = []
    service = OnCallService(engine, Topics(),
                            publish=lambda topic, payload: published.append(
                                (topic, json.loads(payload))))
    await service.start()
    assert published == [("alertline/oncall/ops", {
        "schedule": "ops", "at": "2026-01-01T12:00:00+00:00", "on_call": ["alice"],
        "until": "2026-01-01T18:00:00+00:00", "next": [
            {"at": "2026-01-01T18:00:00+00:00", "on_call": ["bob"]},
            {"at": "2026-01-02T06:00:00+00:00", "on_call": ["alice"]},
            {"at": "2026-01-02T18:00:00+00:00", "on_call": ["bob"]},
            {"at": "2026-01-03T06:00:00+00:00", "on_call": ["alice"]},
            {"at": "2026-01-03T18:00:00+00:00", "on_call": ["bob"]}]})]
    await manual_engine.advance(engine, 6 * 3600)
    handoff = [p for t, p in published if p["at"] == "2026-01-01T18:00:00+00:00"]
    assert [p["on_call"] for p in handoff] == [["bob"]], "published at the handoff itself"
    assert published[-1][1]["on_call"] == ["bob"]
