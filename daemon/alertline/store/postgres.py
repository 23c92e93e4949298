"""PostgreSQL store (psycopg 3, pooled): the store several daemons share (``store.url``).

It implements the :class:`~alertline.store.protocol.Store` Protocol exactly as the SQLite store
(:mod:`alertline.store.sqlite`) does and is held to the same conformance suite: callers hand over
units of :mod:`~alertline.store.intents` and read typed records; only
:mod:`~alertline.store.postgres_ops`, :mod:`~alertline.store.postgres_reads` and
:mod:`~alertline.store.postgres_schema` hold SQL, and no psycopg error leaves the store.

Group commit: units of work from concurrent callers share one transaction, each under a savepoint
of its own, so a unit the data refuses (an alert id that exists) is rolled back to its savepoint
and rejected alone while its neighbours are kept, in one round of statements. When the database
cannot be reached or written (a restart, a failover, a standby, a full disk: a *fault*, see
:mod:`~alertline.store.postgres_faults`), ``commit`` neither fails nor returns: the work is kept
and retried with backoff through :class:`~alertline.store.health.StoreHealth`, as SQLite's is, so
nothing is confirmed before it is committed.

A connection lost while COMMIT was on its way leaves the outcome unknown; every transaction
therefore writes a random id into ``commit_log``, and the retry first looks for it, so work that
was kept is not applied twice (which would reject a new alert as a duplicate of itself).

The URL's password is a secret: the store's name in logs and ``/healthz`` is the URL without it,
and every error text the store makes is scrubbed of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolClosed

from alertline.redact import Redactor
from alertline.store.errors import (
    StoreClosedError,
    StoreError,
    StoreFencedError,
    StoreOpenError,
    StoreRejectedError,
    StoreUnavailableError,
)
from alertline.store.group_commit import GroupCommit, Results, Waiting, settle
from alertline.store.health import StoreHealth, describe
from alertline.store.intents import Intent
from alertline.store.postgres_cluster import PostgresCluster
from alertline.store.postgres_faults import is_fault
from alertline.store.postgres_ops import Conn, apply
from alertline.store.postgres_reads import PostgresReads, Query
from alertline.store.postgres_schema import MIGRATIONS, NewerSchemaError, migrate
from alertline.store.protocol import ClusterStore
from alertline.store.protocol import Store as StoreProtocol

_LOGGER = logging.getLogger(__name__)

__all__ = ["PostgresStore"]

T = TypeVar("T")

# what one transaction did for each unit it took: its results, or why it was refused
_Outcome = Results | StoreRejectedError


class PostgresStore(GroupCommit, PostgresReads, PostgresCluster):
    """The PostgreSQL store over ``url`` (``postgresql://user:password@host:port/dbname``)."""

    def __init__(self, url: str, *, min_connections: int = 1, max_connections: int = 8,
                 connect_timeout: float = 10.0, fault_timeout: float = 5.0) -> None:
        self.url = url
        try:
            password = conninfo_to_dict(url).get("password")
        except psycopg.ProgrammingError:  # an unparsable URL fails in open, with a clear text
            password = None
        self._redactor = Redactor([str(password)] if password else [])
        self.path = self._redactor.text(url)
        self.min_connections = min_connections
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        # how long a statement waits for a pooled connection before the wait counts as a fault
        # (reported on /healthz) and is retried with backoff
        self.fault_timeout = fault_timeout
        self.health = StoreHealth(self.path)
        self.commits = 0
        self._pool: AsyncConnectionPool[Conn] | None = None
        # a cluster member's lease lane: renewals and claims never queue behind the work
        self._lease_pool: AsyncConnectionPool[Conn] | None = None
        self._pending: list[Waiting] = []
        self._key_waiters = {}
        self._key_lookup = None
        self._flusher: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._shut = False
        # the commit-log id and outcomes of a transaction whose COMMIT got no answer
        self._in_doubt: tuple[uuid.UUID, list[_Outcome]] | None = None

    @property
    def schema_version(self) -> int:
        """The schema version this code migrates to."""
        return len(MIGRATIONS)

    def _describe(self, error: BaseException) -> str:
        """``error`` as text for logs and callers, without the password."""
        return self._redactor.text(describe(error))

    async def open(self) -> None:
        """Connect, migrate (once, whoever else opens now) and start the pool;
        :class:`StoreOpenError` naming the cause (never the password) if that cannot be done."""
        try:
            # one plain connection first: a wrong password or host fails at once with the
            # server's own words, where a pool would retry until its timeout
            async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout))
            ) as conn:
                await migrate(conn, self.path)
            self._pool = await self._new_pool("alertline-store", self.min_connections,
                                              self.max_connections)
        except (psycopg.Error, OSError, NewerSchemaError, TimeoutError) as err:
            raise StoreOpenError(f"the store {self.path} cannot be opened: "
                                 f"{self._describe(err)}") from err

    async def _new_pool(self, name: str, least: int, most: int) -> AsyncConnectionPool[Conn]:
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.url, open=False, min_size=least, max_size=most, kwargs={"autocommit": True},
            configure=_configure, name=name, timeout=self.fault_timeout)
        await pool.open(wait=True, timeout=self.connect_timeout)
        return pool

    async def open_lease_lane(self) -> None:
        """A connection of its own for a cluster member's lease (see ``_read``'s ``lease``)."""
        if self._lease_pool is None and not self._shut:
            try:
                self._lease_pool = await self._new_pool("alertline-lease", 1, 2)
            except (psycopg.Error, OSError, TimeoutError) as err:
                raise StoreUnavailableError(f"the store {self.path} cannot be reached: "
                                            f"{self._describe(err)}") from err

    async def close(self) -> None:
        """Finish pending units of work and close the pool; while the database is failing, one
        last attempt only (what it cannot keep fails with :class:`StoreUnavailableError`)."""
        self._closing.set()
        try:
            if self._flusher is not None:
                await asyncio.shield(self._flusher)
        finally:
            self._shut = True
            pools, self._pool, self._lease_pool = (self._pool, self._lease_pool), None, None
            for pool in pools:
                if pool is not None:
                    await pool.close(timeout=self.fault_timeout)

    @contextlib.asynccontextmanager
    async def _connection(self, *, lease: bool = False) -> AsyncIterator[Conn]:
        """A pooled connection (``StoreClosedError`` once closed), from the lease lane if
        ``lease`` and it is open; one that met a fault is closed, so the pool connects anew: a
        session on a server that became a standby, or that a failover left behind, would fail
        the same way for ever."""
        pool = (self._lease_pool if lease else None) or self._pool
        if self._shut or pool is None:
            raise StoreClosedError(f"the store {self.path} is closed")
        async with pool.connection(timeout=self.fault_timeout) as conn:
            try:
                yield conn
            except BaseException as err:
                if is_fault(err):
                    with contextlib.suppress(Exception):
                        await conn.close()
                raise

    async def _read(self, fn: Query[T], *, wait: bool = True, lease: bool = False) -> T:
        """Run ``fn`` on a pooled connection (``lease``: the lease lane's); on a fault retry with
        backoff (unless ``wait`` is False or the store is closing: then
        :class:`StoreUnavailableError`)."""
        attempt = 0
        while True:
            try:
                async with self._connection(lease=lease) as conn:
                    result = await fn(conn)
            except PoolClosed as err:
                raise StoreClosedError(f"the store {self.path} is closed") from err
            except Exception as err:
                if not is_fault(err):
                    if isinstance(err, psycopg.Error):
                        raise StoreError(f"the store cannot be read: "
                                         f"{self._describe(err)}") from err
                    raise
                self.health.failed(StoreUnavailableError(self._describe(err)), writing=False)
                if not wait or self._closing.is_set():
                    raise StoreUnavailableError(f"the store cannot be read now "
                                                f"({self.health.error})") from err
                await self._pause(attempt)
                attempt += 1
                continue
            self.health.succeeded(writing=False)
            return result


    # -- writing ---------------------------------------------------------------------------

    async def _flush(self) -> None:
        carried: list[Waiting] = []
        attempt = 0
        while self._pending or carried:
            taken, self._pending = carried + self._pending, []
            carried = []
            try:
                outcomes = await self._write([intents for intents, _ in taken])
            except StoreFencedError as err:
                for _, future in taken:
                    settle(future, err)
                continue
            except Exception as err:
                if is_fault(err):
                    carried = await self._after_fault(taken, err, attempt)
                    attempt += 1
                    continue
                # neither the data nor the surroundings (a bug): nobody's work was kept
                failure = StoreError(f"the store failed: {self._describe(err)}")
                failure.__cause__ = err
                for _, future in taken:
                    settle(future, failure)
                continue
            attempt = 0
            self.health.succeeded(writing=True)
            for (_, future), outcome in zip(taken, outcomes, strict=True):
                if isinstance(outcome, StoreRejectedError):
                    settle(future, outcome)
                else:
                    settle(future, None, outcome)

    async def _after_fault(self, taken: list[Waiting], error: Exception,
                           attempt: int) -> list[Waiting]:
        """Keep ``taken`` for the next attempt (after a backoff pause); when closing, give up
        once the last attempt failed and tell each caller its work was not kept."""
        self.health.failed(StoreUnavailableError(self._describe(error)), writing=True)
        if self._closing.is_set() and attempt > 0:
            kept = "may not have been kept" if self._in_doubt else "was not kept"
            failure = StoreUnavailableError(f"the store cannot be written ({self.health.error}); "
                                            f"this work {kept}")
            for _, future in taken + self._pending:
                settle(future, failure)
            self._pending = []
            return []
        await self._pause(attempt)
        return taken

    async def _write(self, units: list[list[Intent]]) -> list[_Outcome]:
        """Apply ``units`` in one transaction, each under its own savepoint; faults propagate
        (nothing of this transaction was kept, unless the commit log shows it was)."""
        async with self._connection() as conn:
            done: list[_Outcome] = []
            if self._in_doubt is not None:
                token, outcomes = self._in_doubt
                cur = await conn.execute("SELECT 1 FROM commit_log WHERE id=%s", (token,))
                if await cur.fetchone() is not None:  # it was kept: settle, apply the rest
                    self.commits += 1
                    done = outcomes
                self._in_doubt = None
                units = units[len(done):]
                if not units:
                    return done
            outcomes = []
            token = uuid.uuid4()
            async with conn.transaction():
                await self.fence(conn)
                for intents in units:
                    outcomes.append(await self._apply_unit(conn, intents))
                await conn.execute("INSERT INTO commit_log(id) VALUES (%s)", (token,))
                # set before COMMIT is sent: if its answer is lost, the retry asks the log
                self._in_doubt = (token, outcomes)
            self._in_doubt = None
            self.commits += 1
            return done + outcomes

    async def _apply_unit(self, conn: Conn, intents: list[Intent]) -> _Outcome:
        """One caller's unit under a savepoint: its results, or its rejection (faults raise)."""
        try:
            async with conn.transaction():
                return [await apply(conn, intent, owner=self.member) for intent in intents]
        except psycopg.Error as err:
            if is_fault(err):
                raise
            rejected = StoreRejectedError(f"the store refused this work: {self._describe(err)}")
            rejected.__cause__ = err
            return rejected


async def _configure(conn: Conn) -> None:
    """Every pooled connection reads timestamps in UTC, whatever the server's time zone."""
    await conn.execute("SET TIME ZONE 'UTC'")


def _conforms(store: PostgresStore) -> tuple[StoreProtocol, ClusterStore]:
    """Never called: mypy checks here that this class satisfies the Store Protocols."""
    return store, store
