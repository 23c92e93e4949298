"""Retention: finished alerts leave the store after ``store.retention``, and the file shrinks.

Pruning runs as an ordinary store write (it waits out store faults like any other) and returns the
freed pages to the file system in the same transaction (``auto_vacuum=INCREMENTAL``, set up by
:func:`~alertline.store.sqlite_schema.ensure_incremental_vacuum`), so the file stays
proportional to the alerts of the retention window instead of growing for ever.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alertline.store.protocol import Store

_LOGGER = logging.getLogger(__name__)

_CHUNK = 500  # SQLite's bound-parameter limit is 999 on old builds
DEFAULT_RETENTION_SECONDS = 30 * 86400.0
PRUNE_BATCH = 5000
MAX_PRUNE_INTERVAL = 3600.0


@dataclass(frozen=True, slots=True)
class StoreSize:
    """How big the store is, and how much of that holds alerts."""

    file_bytes: int      # the database file plus its WAL
    free_bytes: int      # pages inside the file that hold nothing (freelist)
    alerts: int

    @property
    def bytes_per_alert(self) -> float:
        """File bytes per stored alert (the whole file when there are none)."""
        return self.file_bytes / max(self.alerts, 1)


def prune_sync(conn: sqlite3.Connection, finished_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` alerts that became final before ``finished_before``, with their
    deliveries, events, idempotency keys and submissions no other delivery uses; free the pages.

    Runs inside the caller's transaction; returns how many alerts were deleted.
    """
    ids = [str(r[0]) for r in conn.execute(
        "SELECT id FROM alerts WHERE final = 1 AND updated_at < ? ORDER BY updated_at LIMIT ?",
        (finished_before.isoformat(), limit))]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        submissions = [r[0] for r in conn.execute(
            f"SELECT DISTINCT submission_id FROM deliveries WHERE alert_id IN ({marks}) "  # noqa: S608
            "AND submission_id IS NOT NULL", chunk)]
        for table in ("events", "deliveries", "idempotency"):
            conn.execute(f"DELETE FROM {table} WHERE alert_id IN ({marks})", chunk)  # noqa: S608
        conn.execute(f"DELETE FROM alerts WHERE id IN ({marks})", chunk)  # noqa: S608
        conn.executemany("DELETE FROM submissions WHERE id = ? AND NOT EXISTS (SELECT 1 FROM "
                         "deliveries WHERE submission_id = ?)", [(s, s) for s in submissions])
    if ids:
        conn.execute("PRAGMA incremental_vacuum").fetchall()
    return len(ids)


def size_sync(conn: sqlite3.Connection, path: str) -> StoreSize:
    """The store's :class:`StoreSize` (store thread)."""
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    free_pages = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    alerts = int(conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])
    file_bytes = 0
    if path != ":memory:":
        for name in (path, f"{path}-wal"):
            if os.path.exists(name):
                file_bytes += os.path.getsize(name)
    return StoreSize(file_bytes=file_bytes, free_bytes=free_pages * page_size, alerts=alerts)


async def prune_finished(store: Store, now: Callable[[], datetime], retention: float) -> int:
    """Prune alerts finished longer than ``retention`` seconds ago, in batches (a short
    transaction each); how many went. A store error is logged, not raised (the next pass
    tries again)."""
    pruned = 0
    try:
        while True:
            batch = await store.prune(now() - timedelta(seconds=retention), limit=PRUNE_BATCH)
            pruned += batch
            if batch < PRUNE_BATCH:
                break
    except asyncio.CancelledError:
        raise
    except Exception as err:
        _LOGGER.error("pruning finished alerts failed: %s", err)
    if pruned:
        _LOGGER.info("pruned %d alerts finished more than %s ago", pruned,
                     timedelta(seconds=retention))
    return pruned


async def keep_pruning(store: Store, now: Callable[[], datetime], retention: float, *,
                       at_once: bool = True) -> None:
    """:func:`prune_finished` for ever (cancel to stop), every tenth of the retention period,
    at most hourly; the first pass at once, or after one period if the host just ran one."""
    interval = max(1.0, min(MAX_PRUNE_INTERVAL, retention / 10))
    if not at_once:
        await asyncio.sleep(interval)
    while True:
        await prune_finished(store, now, retention)
        await asyncio.sleep(interval)
