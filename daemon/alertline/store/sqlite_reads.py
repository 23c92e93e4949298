"""The SQLite store's reads: the queries that load the records of :mod:`alertline.store.stored`.

A mixin of :class:`~alertline.store.sqlite.Store`: every query runs on the store's thread through
``_read``, which waits out store faults like writes do.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from alertline.model import Alert, AlertStatus, Delivery
from alertline.providers.base import Submission, SubmittedItem
from alertline.store.sqlite_retention import StoreSize, size_sync
from alertline.store.stored import OpenWork, Phase, StoredDelivery, StoredSubmission

__all__ = ["OpenWork", "Phase", "StoreReads", "StoredDelivery", "StoredSubmission"]

T = TypeVar("T")


class StoreReads:
    """The read methods of :class:`~alertline.store.sqlite.Store`."""

    path: str
    _lookups: list[tuple[str, asyncio.Future[str | None]]]
    _lookup_task: asyncio.Task[None] | None

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection (store thread only); provided by the store."""
        raise NotImplementedError

    async def _read(self, fn: Callable[[], T], *, wait: bool = True) -> T:
        """Run ``fn`` on the store's thread; provided by the store."""
        raise NotImplementedError

    async def alert_for_key(self, key: str) -> str | None:
        """The alert id registered under idempotency ``key``.

        Concurrent look-ups share one query (one hop to the store thread), like writes share
        one transaction: under load every accepted alert asks this once.
        """
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._lookups.append((key, future))
        if self._lookup_task is None or self._lookup_task.done():
            self._lookup_task = asyncio.create_task(self._look_up())
        return await future

    async def _look_up(self) -> None:
        while self._lookups:
            taken, self._lookups = self._lookups, []
            keys = list({key for key, _ in taken})
            try:
                found = await self._read(partial(self._keys_sync, keys))
            except Exception as err:
                for _, future in taken:
                    if not future.done():
                        future.set_exception(err)
                continue
            for key, future in taken:
                if not future.done():
                    future.set_result(found.get(key))

    def _keys_sync(self, keys: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found.update((str(k), str(a)) for k, a in self.conn.execute(
                f"SELECT key, alert_id FROM idempotency WHERE key IN ({marks})",  # noqa: S608
                chunk))
        return found

    async def load_alert(self, alert_id: str) -> tuple[Alert, AlertStatus,
                                                        list[StoredDelivery]] | None:
        """An alert, its status and its deliveries."""
        def read() -> tuple[Alert, AlertStatus, list[StoredDelivery]] | None:
            row = self.conn.execute("SELECT data, status FROM alerts WHERE id=?",
                                    (alert_id,)).fetchone()
            if row is None:
                return None
            rows = self.conn.execute(
                "SELECT data, phase, submission_id FROM deliveries WHERE alert_id=? ORDER BY rowid",
                (alert_id,)).fetchall()
            return (Alert.from_json(json.loads(row[0])), AlertStatus.from_json(json.loads(row[1])),
                    [_stored(r) for r in rows])
        return await self._read(read)

    async def load_open_work(self) -> OpenWork:
        """Every alert that is not final, with its deliveries, submissions and timers."""
        def read() -> OpenWork:
            conn = self.conn
            alerts = {
                r[0]: (Alert.from_json(json.loads(r[1])), AlertStatus.from_json(json.loads(r[2])))
                for r in conn.execute("SELECT id, data, status FROM alerts WHERE final=0")
            }
            deliveries: list[StoredDelivery] = []
            for alert_id in alerts:
                deliveries.extend(_stored(r) for r in conn.execute(
                    "SELECT data, phase, submission_id FROM deliveries WHERE alert_id=? "
                    "ORDER BY rowid", (alert_id,)))
            wanted = {d.submission_id for d in deliveries if d.submission_id}
            submissions: dict[str, StoredSubmission] = {}
            for sub_id in wanted:
                row = conn.execute("SELECT id, provider, provider_ref, submitted_at, data FROM "
                                   "submissions WHERE id=?", (sub_id,)).fetchone()
                if row:
                    submissions[sub_id] = _submission(row)
            timers = [(r[0], datetime.fromisoformat(r[1]), json.loads(r[2]))
                      for r in conn.execute("SELECT key, due, data FROM timers")]
            return OpenWork(alerts=alerts, deliveries=deliveries, submissions=submissions,
                            timers=timers)
        return await self._read(read)

    async def find_deliveries(self, provider: str, provider_ref: str | None,
                              message_id: str | None) -> list[str]:
        """Alert ids whose deliveries match a provider job / message id (for pushed status)."""
        def read() -> list[str]:
            if message_id:
                rows = self.conn.execute(
                    "SELECT DISTINCT alert_id FROM deliveries WHERE provider=? AND "
                    "provider_message_id=?", (provider, message_id)).fetchall()
                if rows:
                    return [r[0] for r in rows]
            if provider_ref:
                rows = self.conn.execute("SELECT DISTINCT alert_id FROM deliveries WHERE "
                                         "provider=? AND provider_ref=?",
                                         (provider, provider_ref)).fetchall()
                return [r[0] for r in rows]
            return []
        return await self._read(read)

    async def outbox(self, limit: int = 1000, *,
                     after: int = 0) -> list[tuple[int, str, bytes, bool]]:
        """The oldest queued MQTT messages ``(seq, topic, payload, retain)``, seq > ``after``."""
        def read() -> list[tuple[int, str, bytes, bool]]:
            return [(r[0], r[1], bytes(r[2]), bool(r[3])) for r in self.conn.execute(
                "SELECT seq, topic, payload, retain FROM outbox WHERE seq > ? ORDER BY seq "
                "LIMIT ?", (after, limit))]
        return await self._read(read)

    async def meta_get(self, key: str) -> str | None:
        """A value the host keeps in the store's ``meta`` table (e.g. published discovery)."""
        def read() -> str | None:
            row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            return str(row[0]) if row else None
        return await self._read(read)

    async def counter(self, key: str, window_start: datetime) -> int:
        """A rate counter's value in the window starting at ``window_start``."""
        def read() -> int:
            row = self.conn.execute("SELECT value, window_start FROM counters WHERE key=?",
                                    (key,)).fetchone()
            if row is None or row[1] != window_start.isoformat():
                return 0
            return int(row[0])
        return await self._read(read)

    async def events(self, alert_id: str) -> list[dict[str, Any]]:
        """The event log of an alert, oldest first."""
        def read() -> list[dict[str, Any]]:
            cols = ("delivery_id", "at", "kind", "from_state", "to_state", "provider_status",
                    "reason")
            return [dict(zip(cols, r, strict=True)) for r in self.conn.execute(
                "SELECT delivery_id, at, kind, from_state, to_state, provider_status, reason "
                "FROM events WHERE alert_id=? ORDER BY seq", (alert_id,))]
        return await self._read(read)

    async def recent_alerts(self, limit: int = 50) -> list[tuple[Alert, str, bool, datetime]]:
        """The newest alerts ``(alert, state, final, updated_at)``, open ones first (web page)."""
        def read() -> list[tuple[Alert, str, bool, datetime]]:
            return [(Alert.from_json(json.loads(r[0])), str(r[1]), bool(r[2]),
                     datetime.fromisoformat(r[3])) for r in self.conn.execute(
                "SELECT data, state, final, updated_at FROM alerts "
                "ORDER BY final, created_at DESC LIMIT ?", (limit,))]
        return await self._read(read)

    async def stats(self) -> dict[str, Any]:
        """Counts for metrics: deliveries by state and provider, open alerts, outbox depth."""
        def read() -> dict[str, Any]:
            conn = self.conn
            by_state = {f"{r[0]}|{r[1]}": r[2] for r in conn.execute(
                "SELECT provider, state, COUNT(*) FROM deliveries GROUP BY provider, state")}
            return {
                "deliveries": by_state,
                "alerts_open": conn.execute("SELECT COUNT(*) FROM alerts WHERE final=0")
                .fetchone()[0],
                "alerts_total": conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0],
                "outbox": conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0],
            }
        return await self._read(read, wait=False)

    async def size(self) -> StoreSize:
        """The file's size, its free pages and the alerts it holds (bytes per alert)."""
        return await self._read(lambda: size_sync(self.conn, self.path))


def _stored(row: tuple[str, str, str | None]) -> StoredDelivery:
    return StoredDelivery(delivery=Delivery.from_json(json.loads(row[0])), phase=row[1],
                          submission_id=row[2])


def _submission(row: tuple[str, str, str | None, str, str]) -> StoredSubmission:
    payload = json.loads(row[4])
    items = tuple(SubmittedItem(delivery_id=i["delivery_id"], number=i["number"],
                                provider_message_id=i.get("provider_message_id"))
                  for i in payload["items"])
    return StoredSubmission(id=row[0], provider=row[1], submission=Submission(
        provider_ref=row[2], items=items, submitted_at=datetime.fromisoformat(row[3]),
        data=payload["data"]))
