"""SQLite store (WAL): alerts, deliveries, events, idempotency keys, submissions and the outbox.

It implements the :class:`~alertline.store.protocol.Store` Protocol: callers hand over units of
:mod:`~alertline.store.intents` and read typed records; only :mod:`~alertline.store.sqlite_ops`
(writes), :mod:`~alertline.store.sqlite_reads` and :mod:`~alertline.store.sqlite_retention` hold
SQL, and no ``sqlite3`` error leaves the store (see :mod:`alertline.store.errors`).

All SQLite work runs on one dedicated thread. Units of work from concurrent callers are coalesced
into one transaction (group commit): ``await store.commit(intents)`` returns once they are durable
(``synchronous=FULL``: the WAL is synced at every commit, so a committed alert survives a power
loss or a file system error).

When the store cannot be written (disk full, read-only, I/O error, locked: a *fault*, see
:mod:`alertline.store.health`), ``commit`` does not fail and does not return: it keeps the work and
retries them with backoff, reopening the database file each time, until they are durable. Whoever
waits for it therefore never confirms what was not kept, and continues by itself once the store
works again. Only :meth:`SqliteStore.close` ends the wait (with :class:`StoreUnavailableError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from alertline.store.errors import (
    StoreBusyError,
    StoreClosedError,
    StoreError,
    StoreOpenError,
    StoreRejectedError,
    StoreUnavailableError,
)
from alertline.store.group_commit import GroupCommit, Waiting, settle
from alertline.store.health import StoreHealth, describe
from alertline.store.intents import Intent
from alertline.store.protocol import Store as StoreProtocol
from alertline.store.sqlite_faults import is_fault
from alertline.store.sqlite_ops import apply
from alertline.store.sqlite_reads import StoreReads
from alertline.store.sqlite_retention import StoreSize
from alertline.store.sqlite_schema import MIGRATIONS, ensure_incremental_vacuum
from alertline.store.stored import OpenWork, Phase, StoredDelivery, StoredSubmission

_LOGGER = logging.getLogger(__name__)

__all__ = [
    "MIGRATIONS",
    "OpenWork",
    "Phase",
    "SqliteStore",
    "StoreBusyError",
    "StoreClosedError",
    "StoreError",
    "StoreOpenError",
    "StoreRejectedError",
    "StoreSize",
    "StoreUnavailableError",
    "StoredDelivery",
    "StoredSubmission",
]

T = TypeVar("T")

WAL_SIZE_LIMIT = 4 * 1024 * 1024


class SqliteStore(GroupCommit, StoreReads):
    """The SQLite store; every method that touches the database runs on the store's thread."""

    def __init__(self, path: str | Path, *, exclusive: bool = False) -> None:
        self.path = str(path)
        self.exclusive = exclusive
        self._lock_file: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alertline-store")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[Waiting] = []
        self._flusher: asyncio.Task[None] | None = None
        self._lookups: list[tuple[str, asyncio.Future[str | None]]] = []
        self._lookup_task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._reopen = False
        self._closed = False  # store thread only: set by the last task close runs there
        self._shut = False  # set once close has finished: nothing more runs
        self.health = StoreHealth(self.path)
        self.commits = 0

    async def open(self) -> None:
        """Open (and migrate) the database; :class:`StoreOpenError` (or :class:`StoreBusyError`)
        if it cannot be."""
        try:
            await self._run(self._open_sync)
        except (sqlite3.Error, OSError) as err:
            raise StoreOpenError(describe(err)) from err

    def _open_sync(self) -> None:
        conn = self._connect_sync()
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
            self._migrate(conn, version)
            ensure_incremental_vacuum(conn, self.path)
        except BaseException:
            conn.close()
            self._unlock()
            raise
        self._conn = conn

    def _connect_sync(self) -> sqlite3.Connection:
        """Lock (if exclusive) and connect with the store's settings."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            if self.exclusive and self._lock_file is None:
                self._lock()
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            # before the first table exists, so a new file frees pages incrementally from the start
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            # after a checkpoint the WAL shrinks back to this, instead of keeping the size of
            # the largest burst for ever
            conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=5000")
        except BaseException:
            conn.close()
            raise
        return conn

    def _reopen_sync(self) -> None:
        """Drop the connection (and lock) a fault may have spoiled, then connect again: a file
        system repaired and mounted again at the same path is only seen through new handles."""
        if self._closed:  # a read or retry that outlived close must not take the lock again
            raise StoreUnavailableError(f"the store {self.path} is closed")
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        self._unlock()
        try:
            self._conn = self._connect_sync()
        except StoreBusyError as err:  # taken meanwhile: wait like for any other fault
            raise StoreUnavailableError(str(err)) from err
        self._reopen = False

    def _unlock(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                self._lock_file.close()
            self._lock_file = None

    def _migrate(self, conn: sqlite3.Connection, version: int) -> None:
        """Run every migration after ``version``, each in its own transaction."""
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.execute("BEGIN")
            try:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT OR REPLACE INTO meta(key, value) "
                             "VALUES ('schema_version', ?)", (str(number),))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            _LOGGER.info("store %s migrated to schema version %d", self.path, number)

    def _lock(self) -> None:
        """Take the store's lock file: one process at a time works on a store."""
        lock = open(f"{self.path}.lock", "a+")  # noqa: SIM115 - held open while the store is open
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise StoreBusyError(
                f"the store {self.path} is in use by another alertline process (a running "
                "daemon?): publish to it over MQTT (alertline publish) or use another "
                "store path") from None
        self._lock_file = lock

    @property
    def schema_version(self) -> int:
        """The schema version this code migrates to."""
        return len(MIGRATIONS)

    async def close(self) -> None:
        """Flush pending writes and close; while the store is failing, one last attempt only
        (what it cannot keep fails with :class:`StoreUnavailableError`: it was never confirmed)."""
        self._closing.set()
        try:
            if self._flusher is not None:
                await asyncio.shield(self._flusher)
        finally:  # a last write that failed must not keep the lock: the next open would fail
            with contextlib.suppress(Exception):
                await self._run(self._close_sync)
            self._unlock()
            self._shut = True
            self._executor.shutdown(wait=True)

    def _close_sync(self) -> None:
        """Close the connection and release the lock on the store thread, where every later
        read or write sees ``_closed`` and refuses instead of connecting (and locking) again."""
        self._closed = True
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        self._unlock()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._shut:
            raise StoreClosedError(f"the store {self.path} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def _read(self, fn: Callable[[], T], *, wait: bool = True) -> T:
        """Run a read on the store thread; on a fault retry with backoff (unless ``wait`` is
        False or the store is closing: then :class:`StoreUnavailableError`)."""
        if self._shut:  # not a fault: no outage to report
            raise StoreClosedError(f"the store {self.path} is closed")
        attempt = 0
        while True:
            try:
                result: T = await self._run(self._on_connection, fn)
            except Exception as err:
                if not is_fault(err):
                    if isinstance(err, sqlite3.Error):
                        raise StoreError(f"the store cannot be read: {describe(err)}") from err
                    raise
                self._reopen = True
                self.health.failed(err, writing=False)
                if not wait or self._closing.is_set():
                    raise StoreUnavailableError(f"the store cannot be read now "
                                                f"({self.health.error})") from err
                await self._pause(attempt)
                attempt += 1
                continue
            self.health.succeeded(writing=False)
            return result

    def _on_connection(self, fn: Callable[[], T]) -> T:
        if self._reopen or self._conn is None:
            self._reopen_sync()
        return fn()


    @property
    def conn(self) -> sqlite3.Connection:
        """The connection (store thread only)."""
        assert self._conn is not None, "store is not open"
        return self._conn

    # -- writing ---------------------------------------------------------------------------

    async def _flush(self) -> None:
        carried: list[Waiting] = []
        attempt = 0
        while self._pending or carried:
            taken, self._pending = carried + self._pending, []
            carried = []
            try:
                results = await self._run(self._write_sync,
                                          [i for intents, _ in taken for i in intents])
            except Exception as err:
                if is_fault(err):
                    carried = await self._after_fault(taken, err, attempt)
                    attempt += 1
                    continue
                if len(taken) == 1:
                    settle(taken[0][1], err)
                    continue
                # one caller's rejected unit must not fail its neighbours: retry each on its own
                for intents, future in taken:
                    try:
                        alone = await self._run(self._write_sync, intents)
                    except Exception as single:
                        if is_fault(single):
                            carried.append((intents, future))
                        else:
                            settle(future, single)
                    else:
                        settle(future, None, alone)
                continue
            attempt = 0
            self.health.succeeded(writing=True)
            for intents, future in taken:
                settle(future, None, results[:len(intents)])
                results = results[len(intents):]

    async def _after_fault(self, taken: list[Waiting], error: Exception,
                           attempt: int) -> list[Waiting]:
        """Keep ``taken`` for the next attempt (after a backoff pause); when closing, give up
        once the last attempt failed and tell each caller its work was not kept."""
        self._reopen = True
        self.health.failed(error, writing=True)
        if self._closing.is_set() and attempt > 0:
            failure = StoreUnavailableError(f"the store cannot be written ({self.health.error}); "
                                            "this work was not kept")
            for _, future in taken + self._pending:
                settle(future, failure)
            self._pending = []
            return []
        await self._pause(attempt)
        return taken

    def _write_sync(self, intents: list[Intent]) -> list[int | None]:
        """Apply ``intents`` in one transaction (store thread); what the data refuses becomes
        :class:`StoreRejectedError`, faults stay as they are for :func:`is_fault`."""
        if self._reopen or self._conn is None:
            self._reopen_sync()
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = [apply(conn, intent) for intent in intents]
            conn.execute("COMMIT")
        except BaseException as err:
            if conn.in_transaction:  # a failed COMMIT may have rolled back by itself
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if isinstance(err, sqlite3.Error) and not is_fault(err):
                raise StoreRejectedError(f"the store refused this work: {describe(err)}") from err
            raise
        self.commits += 1
        return results

    # -- retention -------------------------------------------------------------------------



def _conforms(store: SqliteStore) -> StoreProtocol:
    """Never called: mypy checks here that this class satisfies the Store Protocol."""
    return store
