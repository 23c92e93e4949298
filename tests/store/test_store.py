"""The SQLite store: WAL, schema versions and migrations, group commit, the lock file, the data."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alertline.model import Alert, AlertStatus, Channel, Delivery, DeliveryState, Recipient
from alertline.providers.base import Submission, SubmittedItem
from alertline.store import intents
from alertline.store import sqlite as store_module
from alertline.store.intents import Intent
from alertline.store.sqlite import (
    MIGRATIONS,
    Phase,
    SqliteStore,
    StoreBusyError,
    StoreOpenError,
    StoreRejectedError,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "alertline.db")
    await opened.open()
    yield opened
    await opened.close()


def make_alert(alert_id: str = "al-1") -> Alert:
    return Alert(id=alert_id, message="Water leak", recipients=(Recipient("+491701234560"),),
                 channels=(Channel.SMS,), created_at=T0)


def make_delivery(alert_id: str = "al-1", index: int = 1,
                  state: DeliveryState = DeliveryState.PENDING, **changes: object) -> Delivery:
    delivery = Delivery(id=f"{alert_id}-{index}", alert_id=alert_id,
                        recipient=Recipient("+491701234560"), channel=Channel.SMS,
                        provider="sim", state=DeliveryState.PENDING, created_at=T0,
                        updated_at=T0)
    return delivery if state is DeliveryState.PENDING else delivery.advance(state, T0, **changes)


async def insert(store: SqliteStore, alert_id: str = "al-1", keys: tuple[str, ...] = ()) -> None:
    await store.commit([
        intents.insert_alert(make_alert(alert_id), AlertStatus(), "accepted", False, keys),
        intents.save_deliveries([(make_delivery(alert_id), Phase.QUEUED, None)]),
    ])


def sql(path: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(query).fetchall()


async def test_database_is_in_wal_mode_with_the_current_schema(store: SqliteStore,
                                                               tmp_path: Path) -> None:
    path = tmp_path / "alertline.db"
    assert sql(path, "PRAGMA journal_mode") == [("wal",)]
    assert sql(path, "SELECT value FROM meta WHERE key='schema_version'") == [
        (str(len(MIGRATIONS)),)]
    assert store.schema_version == len(MIGRATIONS)
    tables = {row[0] for row in sql(path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"alerts", "deliveries", "events", "idempotency", "submissions", "outbox",
            "timers"} <= tables


async def test_default_location_is_the_working_directory(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = SqliteStore("alertline.db")
    await relative.open()
    await relative.close()
    assert (tmp_path / "alertline.db").exists()


async def test_missing_directories_are_created(tmp_path: Path) -> None:
    nested = SqliteStore(tmp_path / "state" / "deep" / "alertline.db")
    await nested.open()
    await nested.close()
    assert (tmp_path / "state" / "deep" / "alertline.db").exists()


async def test_migrations_run_once_and_keep_data(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "alertline.db"
    old = SqliteStore(path)
    await old.open()
    await insert(old)
    await old.close()
    upgrade = "ALTER TABLE alerts ADD COLUMN note TEXT; CREATE TABLE extra (x INTEGER)"
    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, upgrade])
    for _ in range(2):  # the second open finds version 2 and must not run the upgrade again
        new = SqliteStore(path)
        await new.open()
        loaded = await new.load_alert("al-1")
        await new.close()
        assert loaded is not None and loaded[0] == make_alert()
    assert sql(path, "SELECT value FROM meta WHERE key='schema_version'") == [
        (str(len(MIGRATIONS) + 1),)]
    assert ("note",) in [(row[1],) for row in sql(path, "PRAGMA table_info(alerts)")]


async def test_a_failing_migration_leaves_the_old_version(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "alertline.db"
    first = SqliteStore(path)
    await first.open()
    await first.close()
    monkeypatch.setattr(store_module, "MIGRATIONS",
                        [*MIGRATIONS, "CREATE TABLE half (x INTEGER); SELECT * FROM nowhere"])
    broken = SqliteStore(path)
    with pytest.raises(StoreOpenError, match="nowhere") as raised:
        await broken.open()
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
    await broken.close()
    assert sql(path, "SELECT value FROM meta WHERE key='schema_version'") == [
        (str(len(MIGRATIONS)),)]
    assert sql(path, "SELECT name FROM sqlite_master WHERE name='half'") == []


async def test_concurrent_commits_share_transactions(store: SqliteStore) -> None:
    before = store.commits
    await asyncio.gather(*(insert(store, f"al-{n}") for n in range(50)))
    assert store.commits - before < 50, "concurrent writers are grouped into fewer transactions"
    stats = await store.stats()
    assert stats["alerts_total"] == 50
    assert stats["deliveries"] == {"sim|pending": 50}


async def test_a_failing_writer_does_not_take_its_neighbours_down(store: SqliteStore) -> None:
    await insert(store, "al-taken")
    # the same alert id again: the data refuses it (a constraint), unlike a fault
    broken = [intents.insert_alert(make_alert("al-taken"), AlertStatus(), "accepted", False)]
    results = await asyncio.gather(insert(store, "al-good-1"), store.commit(broken),
                                   insert(store, "al-good-2"), return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], StoreRejectedError)
    assert isinstance(results[1].__cause__, sqlite3.IntegrityError)
    assert await store.load_alert("al-good-1") is not None
    assert await store.load_alert("al-good-2") is not None


async def test_a_failed_transaction_writes_nothing(store: SqliteStore) -> None:
    await insert(store, "al-taken")
    ops: list[Intent] = [intents.insert_alert(make_alert(), AlertStatus(), "accepted", False),
                     intents.insert_alert(make_alert("al-taken"), AlertStatus(), "accepted",
                                           False)]
    with pytest.raises(StoreRejectedError, match="UNIQUE constraint failed"):
        await store.commit(ops)
    assert await store.load_alert("al-1") is None


async def test_close_waits_for_pending_writes(tmp_path: Path) -> None:
    path = tmp_path / "alertline.db"
    opened = SqliteStore(path)
    await opened.open()
    # gather starts the writers first (each queues its ops), then close
    await asyncio.gather(*(insert(opened, f"al-{n}") for n in range(5)), opened.close())
    assert sql(path, "SELECT COUNT(*) FROM alerts") == [(5,)]


async def test_lock_file_keeps_a_second_store_out(tmp_path: Path) -> None:
    path = tmp_path / "alertline.db"
    first = SqliteStore(path, exclusive=True)
    await first.open()
    second = SqliteStore(path, exclusive=True)
    with pytest.raises(StoreBusyError, match="in use by another alertline process"):
        await second.open()
    await second.close()
    await first.close()
    third = SqliteStore(path, exclusive=True)
    await third.open()
    await third.close()


async def test_lock_file_keeps_another_process_out(tmp_path: Path) -> None:
    path = tmp_path / "alertline.db"
    held = SqliteStore(path, exclusive=True)
    await held.open()
    script = textwrap.dedent(f"""
        import asyncio
        from alertline.store.sqlite import SqliteStore, StoreBusyError
        async def main():
            try:
                await SqliteStore({str(path)!r}, exclusive=True).open()
            except StoreBusyError:
                raise SystemExit(3)
        asyncio.run(main())
        """)
    try:
        result = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", script],
                                         timeout=60, check=False)
    finally:
        await held.close()
    assert result.returncode == 3


async def test_alerts_deliveries_and_keys(store: SqliteStore) -> None:
    await insert(store, "al-1", keys=("mqtt:17",))
    assert await store.alert_for_key("al-1") == "al-1"
    assert await store.alert_for_key("mqtt:17") == "al-1"
    assert await store.alert_for_key("unknown") is None
    submitted = make_delivery(state=DeliveryState.SUBMITTED, provider_ref="JOB-1",
                              provider_message_id="MSG-1")
    await store.commit([
        intents.save_deliveries([(submitted, Phase.TRACKING, "sub-1")]),
        intents.update_alert("al-1", AlertStatus(cancelled=True), "in_progress", False,
                              T0 + timedelta(seconds=1)),
        intents.events([("al-1", "al-1-1", T0, "state", "pending", "submitted", "ACCEPTED",
                          None)]),
    ])
    loaded = await store.load_alert("al-1")
    assert loaded is not None
    alert, status, deliveries = loaded
    assert alert == make_alert() and status.cancelled
    assert [(d.delivery, d.phase, d.submission_id) for d in deliveries] == [
        (submitted, Phase.TRACKING, "sub-1")]
    assert await store.find_deliveries("sim", None, "MSG-1") == ["al-1"]
    assert await store.find_deliveries("sim", "JOB-1", None) == ["al-1"]
    assert await store.find_deliveries("other", "JOB-1", "MSG-1") == []
    events = await store.events("al-1")
    assert [(e["kind"], e["from_state"], e["to_state"]) for e in events] == [
        ("state", "pending", "submitted")]


async def test_open_work_holds_only_unfinished_alerts(store: SqliteStore) -> None:
    await insert(store, "al-open")
    await insert(store, "al-done")
    await store.commit([intents.update_alert("al-done", AlertStatus(), "delivered", True, T0)])
    submission = Submission(provider_ref="JOB-1", submitted_at=T0, data={"channel": "sms"},
                            items=(SubmittedItem("al-open-1", "+491701234560", "MSG-1"),))
    tracking = make_delivery("al-open", state=DeliveryState.SUBMITTED)
    await store.commit([
        intents.save_submission("sub-1", "sim", submission),
        intents.save_deliveries([(tracking, Phase.TRACKING, "sub-1")]),
        intents.set_timer("hold:al-open", T0, {"alert": "al-open"}),
        intents.set_timer("gone", T0, {}),
        intents.delete_timer("gone"),
    ])
    work = await store.load_open_work()
    assert list(work.alerts) == ["al-open"]
    assert [d.delivery.id for d in work.deliveries] == ["al-open-1"]
    stored = work.submissions["sub-1"]
    assert (stored.provider, stored.submission) == ("sim", submission)
    assert work.timers == [("hold:al-open", T0, {"alert": "al-open"})]


async def test_outbox_keeps_order_until_removed(store: SqliteStore) -> None:
    await store.commit([intents.outbox_add([("alertline/report/a", b"1", False),
                                             ("alertline/status", b"online", True)], T0)])
    await store.commit([intents.outbox_add([("alertline/report/a", b"2", False)], T0)])
    queued = await store.outbox()
    assert [(topic, payload, retain) for _, topic, payload, retain in queued] == [
        ("alertline/report/a", b"1", False), ("alertline/status", b"online", True),
        ("alertline/report/a", b"2", False)]
    await store.commit([intents.outbox_remove([queued[0][0], queued[1][0]])])
    assert [payload for _, _, payload, _ in await store.outbox()] == [b"2"]
    assert len(await store.outbox(limit=0)) == 0


async def test_counters_restart_with_a_new_window(store: SqliteStore) -> None:
    hour = T0.replace(minute=0)
    await store.commit([intents.counter_add("sms", 2, hour)])
    await store.commit([intents.counter_add("sms", 3, hour)])
    assert await store.counter("sms", hour) == 5
    later = hour + timedelta(hours=1)
    assert await store.counter("sms", later) == 0
    await store.commit([intents.counter_add("sms", 1, later)])
    assert await store.counter("sms", later) == 1


async def test_in_memory_store() -> None:
    memory = SqliteStore(":memory:", exclusive=True)
    await memory.open()
    await insert(memory)
    assert (await memory.stats())["alerts_open"] == 1
    await memory.close()


async def test_every_commit_is_synced_and_the_wal_shrinks_back(store: SqliteStore) -> None:
    # synchronous=FULL (2): the WAL is synced at each commit, so an acknowledged alert survives
    # a power loss; NORMAL (1) would sync at checkpoints only
    assert store.conn.execute("PRAGMA synchronous").fetchone() == (2,)
    assert store.conn.execute("PRAGMA journal_size_limit").fetchone() == (4 * 1024 * 1024,)
    assert store.conn.execute("PRAGMA auto_vacuum").fetchone() == (2,)
