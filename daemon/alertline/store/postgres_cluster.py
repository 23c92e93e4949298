"""The cluster's side of the PostgreSQL store: members, their leases, who owns which alert.

A mixin of :class:`~alertline.store.postgres.PostgresStore`, implementing
:class:`alertline.store.protocol.ClusterStore`. Every daemon sharing the database is a *member*
with a lease (``cluster_members.expires_at``) it renews; each open alert has one ``owner``, the
member that accepted it or took it over. A member whose lease ran out is removed by the first
survivor that notices (``FOR UPDATE SKIP LOCKED``: two survivors never take the same member or
alert), and its open alerts become that survivor's. Times are the database's (``now()``), so the
members' clocks need not agree.

Fencing: once a member has joined, every transaction it writes first takes a ``KEY SHARE`` lock on
its own member row. A survivor removing that row waits for those transactions, and a member whose
row is gone cannot write at all (:class:`~alertline.store.errors.StoreFencedError`): a daemon that
was paused past its lease cannot mark a delivery in flight, so cannot send it, after its alerts
were taken over. A member frozen in the middle of a transaction would hold that lock for as long
as it stays frozen; its sessions carry its name (``application_name``), so the survivor ends them
(``pg_terminate_backend``, allowed between sessions of one role) once its lease has run out.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from alertline.store.errors import StoreFencedError
from alertline.store.postgres_ops import Conn
from alertline.store.postgres_reads import read_open_work
from alertline.store.stored import Command, Member, OpenWork, Reservation

T = TypeVar("T")


def _session_name(member: str) -> str:
    """The ``application_name`` of a member's database sessions (at most 63 bytes)."""
    return f"alertline:{member}"[:63]


class PostgresCluster:
    """The cluster methods of :class:`~alertline.store.postgres.PostgresStore`."""

    member: str | None = None
    """This daemon's member name once it joined (then every write is fenced by it)."""
    lease: float = 0.0
    """Its lease, in seconds: a transaction of its left idle longer than that is ended by the
    server, so a member frozen mid-transaction cannot hold its row's lock (and with it its
    alerts) beyond its lease."""

    async def _read(self, fn: Callable[[Conn], Awaitable[T]], *, wait: bool = True,
                    lease: bool = False) -> T:
        """Run ``fn`` on a pooled connection (``lease``: the lease lane's); by the store."""
        raise NotImplementedError

    async def open_lease_lane(self) -> None:
        """Open the lease lane's own connection; provided by the store."""
        raise NotImplementedError

    async def fence(self, conn: Conn) -> None:
        """Inside a write transaction: refuse it if this member's lease was taken over."""
        if self.member is None:
            return
        # the session carries the member's name, so that a survivor can end it (see
        # ``remove_expired``), and a transaction left idle ends by itself after the lease
        await conn.execute("SELECT set_config('application_name', %s, false), "
                           "set_config('idle_in_transaction_session_timeout', %s, true)",
                           (_session_name(self.member), str(max(1000, int(self.lease * 1000)))))
        cur = await conn.execute("SELECT 1 FROM cluster_members WHERE member=%s FOR KEY SHARE",
                                 (self.member,))
        if await cur.fetchone() is None:
            raise StoreFencedError(f"this daemon ({self.member}) lost its cluster lease and its "
                                   "alerts were taken over; it may not write any more")

    # -- membership ------------------------------------------------------------------------

    async def join(self, member: str, host: str, pid: int, lease: float,
                   client_id: str | None = None) -> None:
        """Register ``member`` (its MQTT session: ``client_id``) with a lease of ``lease``
        seconds; its writes are fenced from now."""
        async def write(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO cluster_members(member, host, pid, client_id, expires_at) VALUES "
                "(%s, %s, %s, %s, now() + make_interval(secs => %s)) ON CONFLICT (member) DO "
                "UPDATE SET host=excluded.host, pid=excluded.pid, client_id=excluded.client_id, "
                "started_at=now(), renewed_at=now(), expires_at=excluded.expires_at",
                (member, host, pid, client_id, lease))
        await self.open_lease_lane()
        await self._read(write, lease=True)
        self.member, self.lease = member, lease

    async def renew(self, member: str, lease: float) -> bool:
        """Extend ``member``'s lease; False if it is gone (a survivor took its alerts over)."""
        async def write(conn: Conn) -> bool:
            cur = await conn.execute(
                "UPDATE cluster_members SET renewed_at=now(), "
                "expires_at=now() + make_interval(secs => %s) WHERE member=%s RETURNING 1",
                (lease, member))
            return await cur.fetchone() is not None
        return await self._read(write, wait=False, lease=True)

    async def leave(self, member: str) -> None:
        """Remove ``member`` and its leases (a clean stop: survivors take over at once)."""
        async def write(conn: Conn) -> None:
            async with conn.transaction():
                await conn.execute("DELETE FROM leases WHERE owner=%s", (member,))
                await conn.execute("DELETE FROM cluster_members WHERE member=%s", (member,))
        await self._read(write, wait=False, lease=True)

    async def members(self) -> list[Member]:
        """Every registered member, with how many open alerts each owns."""
        async def read(conn: Conn) -> list[Member]:
            cur = await conn.execute(
                "SELECT m.member, m.host, m.pid, m.started_at, "
                "EXTRACT(EPOCH FROM m.expires_at - now()), "
                "(SELECT COUNT(*) FROM alerts a WHERE NOT a.final AND a.owner = m.member) "
                "FROM cluster_members m ORDER BY m.started_at, m.member")
            return [Member(name=str(r[0]), host=str(r[1]), pid=int(r[2]), started_at=r[3],
                           expires_in=float(r[4]), alerts=int(r[5]))
                    for r in await cur.fetchall()]
        return await self._read(read, wait=False, lease=True)

    async def remove_expired(self, member: str) -> list[str | None]:
        """Remove the members (other than ``member``) whose lease ran out; the MQTT client ids
        of theirs that no live member uses, for the survivor to drain what those sessions
        hold."""
        async def write(conn: Conn) -> list[str | None]:
            # a member frozen mid-transaction (a paused VM, SIGSTOP) holds its row's lock for
            # as long as it is frozen: its lease ran out, so its sessions are ended first
            cur = await conn.execute(
                "SELECT member FROM cluster_members WHERE expires_at < now() AND member <> %s",
                (member,))
            if expired := [_session_name(str(r[0])) for r in await cur.fetchall()]:
                await conn.execute(
                    # waiting up to 1 s for each to end, so its locks are gone below
                    "SELECT pg_terminate_backend(pid, 1000) FROM pg_stat_activity WHERE "
                    "application_name = ANY(%s) AND pid <> pg_backend_pid()", (expired,))
            cur = await conn.execute(
                "DELETE FROM cluster_members WHERE member IN (SELECT member FROM "
                "cluster_members WHERE expires_at < now() AND member <> %s "
                "FOR UPDATE SKIP LOCKED) RETURNING client_id", (member,))
            gone = [r[0] for r in await cur.fetchall()]
            # a member started again under the same client id has the session back already
            cur = await conn.execute("SELECT client_id FROM cluster_members")
            live = {r[0] for r in await cur.fetchall()}
            return [client_id for client_id in gone if client_id not in live]
        return await self._read(write, wait=False, lease=True)

    async def claim_orphans(self, member: str, limit: int = 1000) -> list[str]:
        """Take up to ``limit`` open alerts that no live member owns; the ids taken, oldest
        first."""
        async def write(conn: Conn) -> list[str]:
            async with conn.transaction():
                cur = await conn.execute(
                    "UPDATE alerts SET owner=%s WHERE id IN (SELECT a.id FROM alerts a "
                    "WHERE NOT a.final AND (a.owner IS NULL OR NOT EXISTS (SELECT 1 FROM "
                    "cluster_members m WHERE m.member = a.owner)) ORDER BY a.created_at, a.id "
                    "LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id, created_at",
                    (member, limit))
                rows = await cur.fetchall()
            return [str(r[0]) for r in sorted(rows, key=lambda r: (r[1], r[0]))]
        return await self._read(write, wait=False, lease=True)

    async def load_work_of(self, alert_ids: Sequence[str]) -> OpenWork:
        """The open work of ``alert_ids`` (alerts just claimed), with every timer."""
        return await self._read(lambda conn: read_open_work(conn, alert_ids=list(alert_ids)))

    async def owner_of(self, alert_id: str) -> tuple[str | None, bool, bool] | None:
        """``(owner, final, alive)`` of an alert (``alive``: its owner is a member whose lease
        runs), None if it is unknown."""
        async def read(conn: Conn) -> tuple[str | None, bool, bool] | None:
            cur = await conn.execute(
                "SELECT a.owner, a.final, EXISTS (SELECT 1 FROM cluster_members m WHERE "
                "m.member = a.owner AND m.expires_at > now()) FROM alerts a WHERE a.id=%s",
                (alert_id,))
            row = await cur.fetchone()
            return (row[0], bool(row[1]), bool(row[2])) if row else None
        return await self._read(read)

    # -- singleton leases ------------------------------------------------------------------

    async def hold_lease(self, name: str, member: str, lease: float) -> bool:
        """Take or extend the lease ``name`` (e.g. ``outbox``) unless another member holds
        it unexpired; whether ``member`` holds it now."""
        async def write(conn: Conn) -> bool:
            cur = await conn.execute(
                "INSERT INTO leases(name, owner, expires_at) VALUES "
                "(%s, %s, now() + make_interval(secs => %s)) ON CONFLICT (name) DO UPDATE SET "
                "owner=excluded.owner, expires_at=excluded.expires_at "
                "WHERE leases.owner = excluded.owner OR leases.expires_at < now() RETURNING 1",
                (name, member, lease))
            return await cur.fetchone() is not None
        return await self._read(write, wait=False, lease=True)

    async def release_lease(self, name: str, member: str) -> None:
        """Give the lease ``name`` up if ``member`` holds it (another member may take it)."""
        async def write(conn: Conn) -> None:
            await conn.execute("DELETE FROM leases WHERE name=%s AND owner=%s", (name, member))
        await self._read(write, wait=False, lease=True)

    # -- commands for another member's alerts ----------------------------------------------

    async def send_command(self, alert_id: str, kind: str, data: dict[str, Any]) -> int:
        """Leave a command (``ack``, ``cancel``, ``resolve``) for the alert's owner; its seq."""
        async def write(conn: Conn) -> int:
            cur = await conn.execute("INSERT INTO alert_commands(alert_id, kind, data) VALUES "
                                     "(%s, %s, %s) RETURNING seq",
                                     (alert_id, kind, json.dumps(data)))
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])
        return await self._read(write)

    async def commands_for(self, member: str, limit: int = 100) -> list[Command]:
        """The commands waiting for alerts ``member`` owns, oldest first."""
        async def read(conn: Conn) -> list[Command]:
            cur = await conn.execute(
                "SELECT c.seq, c.alert_id, c.kind, c.data FROM alert_commands c JOIN alerts a "
                "ON a.id = c.alert_id WHERE a.owner=%s ORDER BY c.seq LIMIT %s", (member, limit))
            return [Command(seq=int(r[0]), alert_id=str(r[1]), kind=str(r[2]),
                            data=json.loads(r[3])) for r in await cur.fetchall()]
        return await self._read(read, wait=False)

    async def command_pending(self, seq: int) -> bool:
        """Whether command ``seq`` still waits for its alert's owner."""
        async def read(conn: Conn) -> bool:
            cur = await conn.execute("SELECT 1 FROM alert_commands WHERE seq=%s", (seq,))
            return await cur.fetchone() is not None
        return await self._read(read)

    async def commands_done(self, seqs: Sequence[int]) -> None:
        """Forget commands that were carried out."""
        async def write(conn: Conn) -> None:
            await conn.execute("DELETE FROM alert_commands WHERE seq = ANY(%s)", (list(seqs),))
        await self._read(write)

    # -- caps across members ---------------------------------------------------------------

    async def reserve(self, caps: Sequence[tuple[str, datetime, int]],
                      wanted: int) -> Reservation:
        """Atomically take up to ``wanted`` sends under every cap ``(key, window_start,
        limit)`` at once: as many as the fullest cap allows, counted in all of them."""
        async def write(conn: Conn) -> Reservation:
            values: dict[str, int] = {}
            async with conn.transaction():
                current: dict[str, tuple[int, int]] = {}
                for key, start, limit in sorted(caps):  # one lock order: no deadlock
                    await conn.execute(
                        "INSERT INTO counters(key, value, window_start) VALUES (%s, 0, %s) "
                        "ON CONFLICT (key) DO NOTHING", (key, start.isoformat()))
                    cur = await conn.execute("SELECT value, window_start FROM counters WHERE "
                                             "key=%s FOR UPDATE", (key,))
                    row = await cur.fetchone()
                    assert row is not None
                    used = int(row[0]) if row[1] == start.isoformat() else 0
                    current[key] = (used, limit)
                granted = min([wanted, *(max(0, limit - used)
                                         for used, limit in current.values())])
                for key, start, _ in caps:
                    values[key] = current[key][0] + granted
                    await conn.execute("UPDATE counters SET value=%s, window_start=%s WHERE "
                                       "key=%s", (values[key], start.isoformat(), key))
            return Reservation(granted=granted, values=values)
        return await self._read(write)
