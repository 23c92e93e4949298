"""Retention: finished alerts leave after ``store.retention`` and the file gives the space back."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alertline.model import (
    Alert,
    AlertStatus,
    Channel,
    Delivery,
    DeliveryState,
    Recipient,
)
from alertline.providers.base import Submission, SubmittedItem
from alertline.store import intents
from alertline.store.intents import Intent
from alertline.store.sqlite import Phase, SqliteStore
from alertline.store.sqlite_retention import DEFAULT_RETENTION_SECONDS, keep_pruning
from alertline.store.sqlite_schema import MIGRATIONS

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ALERTS = 20_000
PER_MINUTE = 500
RETENTION = timedelta(minutes=2)


def _finished_alert(alert_id: str, at: datetime) -> list[Intent]:
    """One small alert, delivered: the rows a real one leaves (delivery, events, submission)."""
    alert = Alert(id=alert_id, message="Water leak in the basement",
                  recipients=(Recipient("+491701234560"),), channels=(Channel.SMS,),
                  created_at=at)
    delivery = Delivery(id=f"{alert_id}-1", alert_id=alert_id, recipient=alert.recipients[0],
                        channel=Channel.SMS, provider="sim", state=DeliveryState.PENDING,
                        created_at=at, updated_at=at).advance(DeliveryState.DELIVERED, at)
    submission = Submission(provider_ref=f"job-{alert_id}", submitted_at=at, data={},
                            items=(SubmittedItem(delivery.id, "+491701234560", None),))
    return [
        intents.insert_alert(alert, AlertStatus(), "accepted", False, [f"mqtt:{alert_id}"]),
        intents.save_submission(f"sub-{alert_id}", "sim", submission),
        intents.save_deliveries([(delivery, Phase.DONE, f"sub-{alert_id}")]),
        intents.events([(alert_id, None, at, "accepted", None, None, None, "mqtt"),
                         (alert_id, delivery.id, at, "state", "pending", "delivered", "DELIVERED",
                          None)]),
        intents.update_alert(alert_id, AlertStatus(), "delivered", True, at),
    ]


async def _run(path: Path, *, prune: bool) -> tuple[SqliteStore, int]:
    """20,000 alerts, 500 a minute; with ``prune`` the retention runs after every minute."""
    store = SqliteStore(path)
    await store.open()
    pruned = 0
    for minute in range(ALERTS // PER_MINUTE):
        at = T0 + timedelta(minutes=minute)
        ops = [op for i in range(PER_MINUTE)
               for op in _finished_alert(f"a{minute}-{i}", at)]
        await store.commit(ops)
        if prune:
            pruned += await store.prune(at - RETENTION)
    return store, pruned


async def test_20000_alerts_with_a_short_retention_keep_the_file_small(tmp_path: Path) -> None:
    kept, pruned = await _run(tmp_path / "pruned.db", prune=True)
    grown, _ = await _run(tmp_path / "grown.db", prune=False)
    try:
        small, large = await kept.size(), await grown.size()
        # alerts of the last three minutes remain (retention two minutes, strictly older go)
        assert small.alerts == 3 * PER_MINUTE and pruned == ALERTS - small.alerts
        assert large.alerts == ALERTS
        assert small.file_bytes < large.file_bytes / 5
        # the space went back to the file system, not to a free list inside the file
        assert small.free_bytes < small.file_bytes / 4
        print(f"bytes per alert: {large.bytes_per_alert:.0f} (kept all); file "
              f"{small.file_bytes / 1e6:.1f} MB with retention vs {large.file_bytes / 1e6:.1f} MB")
    finally:
        await kept.close()
        await grown.close()
    with sqlite3.connect(tmp_path / "pruned.db") as conn:
        for table in ("deliveries", "events", "idempotency", "submissions"):
            count = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            assert count == small.alerts * {"events": 2, "idempotency": 2}.get(table, 1), table


async def test_open_and_recent_alerts_are_kept(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "alertline.db")
    await store.open()
    old = T0 - timedelta(days=40)
    await store.commit(_finished_alert("old-final", old))
    await store.commit(_finished_alert("recent-final", T0 - timedelta(days=1)))
    open_ops = _finished_alert("old-open", old)[:-1]  # never final
    await store.commit(open_ops)

    assert await store.prune(T0 - timedelta(days=30)) == 1

    assert await store.load_alert("old-final") is None
    assert await store.load_alert("recent-final") is not None
    assert await store.load_alert("old-open") is not None
    assert await store.alert_for_key("mqtt:old-final") is None
    await store.close()


async def test_a_file_from_before_retention_is_switched_to_incremental_vacuum(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # a store as schema version 1 left it
        conn.executescript(MIGRATIONS[0])
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        conn.execute("INSERT INTO alerts VALUES ('kept', '', '{}', '{}', 'delivered', 1, '')")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone() == (0,)

    store = SqliteStore(path)
    await store.open()
    await store.close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone() == (2,)
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
            str(len(MIGRATIONS)),)
        assert conn.execute("SELECT id FROM alerts").fetchall() == [("kept",)]


async def test_the_daemon_prunes_as_it_starts_and_then_periodically(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "alertline.db")
    await store.open()
    await store.commit(_finished_alert("old", T0 - timedelta(days=31)))
    await store.commit(_finished_alert("young", T0 - timedelta(days=29)))
    pruned: asyncio.Queue[int] = asyncio.Queue()
    prune = store.prune

    async def observed(finished_before: datetime, *, limit: int = 5000) -> int:
        count = await prune(finished_before, limit=limit)
        pruned.put_nowait(count)
        return count

    store.prune = observed  # type: ignore[method-assign]
    task = asyncio.create_task(keep_pruning(store, lambda: T0, DEFAULT_RETENTION_SECONDS))
    try:
        assert await asyncio.wait_for(pruned.get(), 10) == 1
    finally:
        task.cancel()
    assert await store.load_alert("old") is None
    assert await store.load_alert("young") is not None
    await store.close()
