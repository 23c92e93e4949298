"""The store's reads: the records it hands out, and the queries that load them.

A mixin of :class:`~alertline.store.sqlite.Store` (as
:class:`~alertline.store.sqlite_ops.StoreOps` holds its write builders): every query runs on
the store's thread through ``_read``, which waits out store faults like writes do.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from alertline.model import Alert, AlertStatus, Delivery
from alertline.providers.base import Submission, SubmittedItem
from alertline.store.sqlite_retention import StoreSize, size_sync

T = TypeVar("T")


class Phase:
    """Where a delivery is in the submission outbox."""

    QUEUED = "queued"          # waiting to be submitted
    IN_FLIGHT = "in_flight"    # handed to the provider; outcome not yet stored
    TRACKING = "tracking"      # submitted; status being tracked
    DONE = "done"              # final


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """A delivery with its outbox phase and submission id."""

    delivery: Delivery
    phase: str
    submission_id: str | None


@dataclass(frozen=True, slots=True)
class StoredSubmission:
    """A provider request that was made, with what the adapter needs to poll it."""

    id: str
    provider: str
    submission: Submission


@dataclass(frozen=True, slots=True)
class OpenWork:
    """Everything unfinished, loaded at start to resume."""

    alerts: dict[str, tuple[Alert, AlertStatus]]
    deliveries: list[StoredDelivery]
    submissions: dict[str, StoredSubmission]
    timers: list[tuple[str, datetime, dict[str, Any]]]


class StoreReads:
    """The read methods of :class:`~alertline.store.sqlite.Store`."""

    path: str

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection (store thread only); provided by the store."""
        raise NotImplementedError

    async def _read(self, fn: Callable[[], T], *, wait: bool = True) -> T:
        """Run ``fn`` on the store's thread; provided by the store."""
        raise NotImplementedError

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
