"""Heartbeats: one alert per outage, resolved by the next ping, surviving restarts."""

from __future__ import annotations

import json
from typing import Any

from alertline.config.sections import Config
from alertline.engine.core import Engine
from alertline.http.metrics import render
from alertline.oncall.heartbeats import Heartbeats
from alertline.store import intents
from alertline.store.sqlite import SqliteStore
from tests.engine_harness import EngineHarness, make_config

ALICE = "+491701234560"
DAY, HOUR = 86400, 3600


def config() -> Config:
    return make_config(contacts={"alice": {"phone": ALICE}},
                       routes={"ops": {"to": ["alice"]}},
                       heartbeats={"backup": {"period": "1d", "grace": "2h", "route": "ops",
                                              "message": "Nightly backup did not report"}})


class Published:
    """What the heartbeats published, by topic (the last payload wins, as retained)."""

    def __init__(self) -> None:
        self.retained: dict[str, dict[str, Any]] = {}

    def __call__(self, topic: str, payload: bytes) -> None:
        self.retained[topic] = json.loads(payload)


async def started(harness: EngineHarness, published: Published | None = None,
                  ) -> tuple[Engine, Heartbeats]:
    engine = await harness.start(config())
    heartbeats = Heartbeats.from_config(engine, publish=published)
    await heartbeats.start()
    return engine, heartbeats


def sqlite_of(engine: Engine) -> SqliteStore:
    """The engine's store, which these tests open as SQLite to look at its rows."""
    assert isinstance(engine.store, SqliteStore)
    return engine.store


async def alerts(engine: Engine) -> list[tuple[str, str, bool]]:
    """Every alert in the store: id, message, resolved."""
    rows = sqlite_of(engine).conn.execute("SELECT id FROM alerts ORDER BY created_at").fetchall()
    reports = [await engine.report(row[0]) for row in rows]
    return [(r.alert.id, r.alert.message, r.status.resolved) for r in reports]


async def test_a_missed_ping_sends_one_alert_and_the_next_ping_resolves_it(
        manual_engine: EngineHarness) -> None:
    published = Published()
    engine, heartbeats = await started(manual_engine, published)
    state = published.retained["alertline/heartbeat/backup/state"]
    assert (state["state"], state["last_ping"]) == ("up", None)
    await manual_engine.advance(engine, 20 * HOUR)
    await heartbeats.ping("backup", "mqtt")
    await manual_engine.advance(engine, DAY + 2 * HOUR - 1)
    assert await alerts(engine) == [], "inside period + grace"
    await manual_engine.advance(engine, 1)
    [(alert_id, message, resolved)] = await alerts(engine)
    assert (message, resolved) == ("Nightly backup did not report", False)
    report = await engine.report(alert_id)
    assert [d.recipient.number for d in report.deliveries] == [ALICE]
    assert published.retained["alertline/heartbeat/backup/state"]["state"] == "down"
    await heartbeats.check("backup")
    await manual_engine.advance(engine, 3 * DAY)
    assert len(await alerts(engine)) == 1, "one alert per outage"
    await heartbeats.ping("backup", "http")
    assert await alerts(engine) == [(alert_id, message, True)]
    state = published.retained["alertline/heartbeat/backup/state"]
    assert (state["state"], state["alert_id"]) == ("up", None)
    await manual_engine.advance(engine, DAY + 2 * HOUR)
    assert len(await alerts(engine)) == 2, "the next outage is a new alert"
    text = render(heartbeats.families())
    assert 'alertline_heartbeat_up{heartbeat="backup"} 0' in text
    assert 'alertline_heartbeat_outages_total{heartbeat="backup"} 2' in text


async def test_an_outage_that_began_while_the_daemon_was_down_counts(
        manual_engine: EngineHarness) -> None:
    engine, heartbeats = await started(manual_engine)
    await heartbeats.ping("backup")
    await engine.stop()
    manual_engine.clock.advance(2 * DAY)
    engine, heartbeats = await started(manual_engine)
    [(alert_id, _, _)] = await alerts(engine)
    assert alert_id.startswith("hb-backup-")
    assert heartbeats.status("backup")["state"] == "down"
    await engine.stop()
    engine, heartbeats = await started(manual_engine)
    assert len(await alerts(engine)) == 1, "a restart during the outage sends nothing new"
    await heartbeats.ping("backup")
    assert (await alerts(engine))[0][2] is True


async def test_a_check_repeated_after_a_crash_finds_the_alert_it_sent(
        manual_engine: EngineHarness) -> None:
    engine, heartbeats = await started(manual_engine)
    saved = sqlite_of(engine).conn.execute(
        "SELECT value FROM meta WHERE key='heartbeat:backup'").fetchone()[0]
    await manual_engine.advance(engine, DAY + 2 * HOUR)
    assert len(await alerts(engine)) == 1
    # the crash came after the alert was accepted but before the heartbeat's state was saved
    await engine.store.commit([intents.meta_set("heartbeat:backup", saved)])
    heartbeats = Heartbeats.from_config(engine)
    await heartbeats.start()
    assert len(await alerts(engine)) == 1
    assert heartbeats.status("backup")["state"] == "down"
