"""The PostgreSQL store's reads: the queries that load the records of :mod:`alertline.store.stored`.

A mixin of :class:`~alertline.store.postgres.PostgresStore`: every query runs on a pooled
connection through ``_read``, which waits out faults like writes do. What comes out is what the
SQLite store hands out (:mod:`alertline.store.sqlite_reads`): the conformance suite holds both.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from alertline.model import Alert, AlertStatus, Delivery
from alertline.providers.base import Submission, SubmittedItem
from alertline.store.postgres_ops import Conn
from alertline.store.stored import OpenWork, StoredDelivery, StoredSubmission

T = TypeVar("T")

Query = Callable[[Conn], Awaitable[T]]


class PostgresReads:
    """The read methods of :class:`~alertline.store.postgres.PostgresStore`."""

    async def _read(self, fn: Query[T], *, wait: bool = True, lease: bool = False) -> T:
        """Run ``fn`` on a pooled connection; provided by the store."""
        raise NotImplementedError

    # concurrent look-ups waiting for the next query, and the task that makes it
    _key_waiters: dict[str, list[asyncio.Future[str | None]]]
    _key_lookup: asyncio.Task[None] | None

    async def alert_for_key(self, key: str) -> str | None:
        """The alert id registered under idempotency ``key``. Every new alert asks, so the
        look-ups of a burst share one query (one round trip to the server, not one each)."""
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._key_waiters.setdefault(key, []).append(future)
        if self._key_lookup is None or self._key_lookup.done():
            self._key_lookup = asyncio.create_task(self._look_up_keys())
        return await future

    async def _look_up_keys(self) -> None:
        await asyncio.sleep(0)  # let the callers of this moment join
        while self._key_waiters:
            waiting, self._key_waiters = self._key_waiters, {}
            try:
                found = await self._read(partial(_keys_read, list(waiting)))
            except Exception as err:
                for futures in waiting.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(err)
                continue
            for key, futures in waiting.items():
                for future in futures:
                    if not future.done():
                        future.set_result(found.get(key))

    async def load_alert(self, alert_id: str) -> tuple[Alert, AlertStatus,
                                                        list[StoredDelivery]] | None:
        """An alert, its status and its deliveries (in the order they were first saved)."""
        async def read(conn: Conn) -> tuple[Alert, AlertStatus, list[StoredDelivery]] | None:
            cur = await conn.execute("SELECT data, status FROM alerts WHERE id=%s", (alert_id,))
            row = await cur.fetchone()
            if row is None:
                return None
            cur = await conn.execute("SELECT data, phase, submission_id FROM deliveries "
                                     "WHERE alert_id=%s ORDER BY seq", (alert_id,))
            return (Alert.from_json(json.loads(row[0])), AlertStatus.from_json(json.loads(row[1])),
                    [_stored(r) for r in await cur.fetchall()])
        return await self._read(read)

    member: str | None = None

    async def load_open_work(self) -> OpenWork:
        """Every alert that is not final (once this daemon joined a cluster: every one it
        owns), with its deliveries, submissions and timers (one snapshot)."""
        member = self.member
        return await self._read(lambda conn: read_open_work(conn, owner=member))

    async def find_deliveries(self, provider: str, provider_ref: str | None,
                              message_id: str | None) -> list[str]:
        """Alert ids whose deliveries match a provider message id, else a provider job."""
        async def read(conn: Conn) -> list[str]:
            if message_id:
                cur = await conn.execute("SELECT DISTINCT alert_id FROM deliveries WHERE "
                                         "provider=%s AND provider_message_id=%s",
                                         (provider, message_id))
                rows = await cur.fetchall()
                if rows:
                    return [str(r[0]) for r in rows]
            if provider_ref:
                cur = await conn.execute("SELECT DISTINCT alert_id FROM deliveries WHERE "
                                         "provider=%s AND provider_ref=%s",
                                         (provider, provider_ref))
                return [str(r[0]) for r in await cur.fetchall()]
            return []
        return await self._read(read)

    async def outbox(self, limit: int = 1000, *,
                     after: int = 0) -> list[tuple[int, str, bytes, bool]]:
        """The oldest queued MQTT messages ``(seq, topic, payload, retain)``, seq > ``after``."""
        async def read(conn: Conn) -> list[tuple[int, str, bytes, bool]]:
            cur = await conn.execute("SELECT seq, topic, payload, retain FROM outbox "
                                     "WHERE seq > %s ORDER BY seq LIMIT %s", (after, limit))
            return [(int(r[0]), str(r[1]), bytes(r[2]), bool(r[3]))
                    for r in await cur.fetchall()]
        return await self._read(read)

    async def meta_get(self, key: str) -> str | None:
        """A value the host keeps in the store's ``meta`` table."""
        async def read(conn: Conn) -> str | None:
            cur = await conn.execute("SELECT value FROM meta WHERE key=%s", (key,))
            row = await cur.fetchone()
            return str(row[0]) if row else None
        return await self._read(read)

    async def counter(self, key: str, window_start: datetime) -> int:
        """A rate counter's value in the window starting at ``window_start`` (0 in any other)."""
        async def read(conn: Conn) -> int:
            cur = await conn.execute("SELECT value FROM counters WHERE key=%s AND "
                                     "window_start=%s", (key, window_start.isoformat()))
            row = await cur.fetchone()
            return int(row[0]) if row else 0
        return await self._read(read)

    async def events(self, alert_id: str) -> list[dict[str, Any]]:
        """An alert's event log, oldest first (``at`` as the ISO text it was given)."""
        async def read(conn: Conn) -> list[dict[str, Any]]:
            cols = ("delivery_id", "at", "kind", "from_state", "to_state", "provider_status",
                    "reason")
            cur = await conn.execute(
                "SELECT delivery_id, at, kind, from_state, to_state, provider_status, reason "
                "FROM events WHERE alert_id=%s ORDER BY seq", (alert_id,))
            return [dict(zip(cols, r, strict=True)) for r in await cur.fetchall()]
        return await self._read(read)

    async def recent_alerts(self, limit: int = 50) -> list[tuple[Alert, str, bool, datetime]]:
        """The newest alerts ``(alert, state, final, updated_at)``, open ones first."""
        async def read(conn: Conn) -> list[tuple[Alert, str, bool, datetime]]:
            cur = await conn.execute("SELECT data, state, final, updated_at FROM alerts "
                                     "ORDER BY final, created_at DESC LIMIT %s", (limit,))
            return [(Alert.from_json(json.loads(r[0])), str(r[1]), bool(r[2]), r[3])
                    for r in await cur.fetchall()]
        return await self._read(read)

    async def stats(self) -> dict[str, Any]:
        """Counts for metrics; :class:`StoreUnavailableError` at once while failing."""
        async def read(conn: Conn) -> dict[str, Any]:
            cur = await conn.execute("SELECT provider, state, COUNT(*) FROM deliveries "
                                     "GROUP BY provider, state")
            by_state = {f"{r[0]}|{r[1]}": int(r[2]) for r in await cur.fetchall()}
            cur = await conn.execute(
                "SELECT (SELECT COUNT(*) FROM alerts WHERE NOT final), "
                "(SELECT COUNT(*) FROM alerts), (SELECT COUNT(*) FROM outbox)")
            row = await cur.fetchone()
            assert row is not None
            return {"deliveries": by_state, "alerts_open": int(row[0]),
                    "alerts_total": int(row[1]), "outbox": int(row[2])}
        return await self._read(read, wait=False)


async def read_open_work(conn: Conn, *, owner: str | None = None,
                         alert_ids: list[str] | None = None) -> OpenWork:
    """The open alerts (only ``owner``'s, or only ``alert_ids``, if given) with their
    deliveries, submissions and every timer, in one repeatable-read snapshot, so another
    daemon's commit cannot tear it."""
    where, params = "NOT a.final", list[object]()
    if owner is not None:
        where += " AND a.owner = %s"
        params.append(owner)
    if alert_ids is not None:
        where += " AND a.id = ANY(%s)"
        params.append(alert_ids)
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        # ``where`` is built from the constants above, never from data
        cur = await conn.execute(f"SELECT a.id, a.data, a.status FROM alerts a "  # noqa: S608
                                 f"WHERE {where} ORDER BY a.created_at, a.id", params)
        alerts = {r[0]: (Alert.from_json(json.loads(r[1])),
                         AlertStatus.from_json(json.loads(r[2])))
                  for r in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT d.data, d.phase, d.submission_id FROM deliveries d JOIN alerts a "  # noqa: S608
            f"ON a.id = d.alert_id WHERE {where} ORDER BY a.created_at, a.id, d.seq", params)
        deliveries = [_stored(r) for r in await cur.fetchall()]
        wanted = sorted({d.submission_id for d in deliveries if d.submission_id})
        cur = await conn.execute("SELECT id, provider, provider_ref, submitted_at, data "
                                 "FROM submissions WHERE id = ANY(%s)", (wanted,))
        submissions = {r[0]: _submission(r) for r in await cur.fetchall()}
        cur = await conn.execute("SELECT key, due, data FROM timers ORDER BY key")
        timers = [(str(r[0]), r[1], json.loads(r[2])) for r in await cur.fetchall()]
    return OpenWork(alerts=alerts, deliveries=deliveries, submissions=submissions,
                    timers=timers)


async def _keys_read(keys: list[str], conn: Conn) -> dict[str, str]:
    """The alert ids registered under ``keys`` (those that are)."""
    cur = await conn.execute("SELECT key, alert_id FROM idempotency WHERE key = ANY(%s)",
                             (keys,))
    return {str(r[0]): str(r[1]) for r in await cur.fetchall()}


def _stored(row: tuple[Any, ...]) -> StoredDelivery:
    return StoredDelivery(delivery=Delivery.from_json(json.loads(row[0])), phase=str(row[1]),
                          submission_id=row[2])


def _submission(row: tuple[Any, ...]) -> StoredSubmission:
    payload = json.loads(row[4])
    items = tuple(SubmittedItem(delivery_id=i["delivery_id"], number=i["number"],
                                provider_message_id=i.get("provider_message_id"))
                  for i in payload["items"])
    return StoredSubmission(id=str(row[0]), provider=str(row[1]), submission=Submission(
        provider_ref=row[2], items=items, submitted_at=row[3], data=payload["data"]))
