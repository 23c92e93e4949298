"""SQLite store (WAL): alerts, deliveries, events, idempotency keys, submissions and the outbox.

All SQLite work runs on one dedicated thread. Writes from concurrent callers are coalesced into one
transaction (group commit): ``await store.commit(ops)`` returns once the ops are durable
(``synchronous=FULL``: the WAL is synced at every commit, so a committed alert survives a power
loss or a file system error).

When the store cannot be written (disk full, read-only, I/O error, locked: a *fault*, see
:mod:`alertline.store.health`), ``commit`` does not fail and does not return: it keeps the ops and
retries them with backoff, reopening the database file each time, until they are durable. Whoever
waits for it therefore never confirms what was not kept, and continues by itself once the store
works again. Only :meth:`Store.close` ends the wait (with :class:`StoreUnavailableError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from alertline.errors import AlertlineError
from alertline.store.health import StoreHealth, StoreUnavailableError, is_fault, retry_delay
from alertline.store.sqlite_ops import Op, StoreOps
from alertline.store.sqlite_reads import (
    OpenWork,
    Phase,
    StoredDelivery,
    StoredSubmission,
    StoreReads,
)
from alertline.store.sqlite_retention import StoreSize, prune_sync
from alertline.store.sqlite_schema import MIGRATIONS, ensure_incremental_vacuum

_LOGGER = logging.getLogger(__name__)

__all__ = [
    "MIGRATIONS",
    "Op",
    "OpenWork",
    "Phase",
    "Store",
    "StoreBusyError",
    "StoreSize",
    "StoreUnavailableError",
    "StoredDelivery",
    "StoredSubmission",
]

T = TypeVar("T")

WAL_SIZE_LIMIT = 4 * 1024 * 1024


class StoreBusyError(AlertlineError):
    """Another process holds the store."""


class Store(StoreOps, StoreReads):
    """The SQLite store; every method that touches the database runs on the store's thread."""

    def __init__(self, path: str | Path, *, exclusive: bool = False) -> None:
        self.path = str(path)
        self.exclusive = exclusive
        self._lock_file: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alertline-store")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[list[Op], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._lookups: list[tuple[str, asyncio.Future[str | None]]] = []
        self._lookup_task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._reopen = False
        self._closed = False  # store thread only: set by the last task close runs there
        self.health = StoreHealth(self.path)
        self.commits = 0

    async def open(self) -> None:
        """Open (and migrate) the database."""
        await self._run(self._open_sync)

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
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def _read(self, fn: Callable[[], T], *, wait: bool = True) -> T:
        """Run a read on the store thread; on a fault retry with backoff (unless ``wait`` is
        False or the store is closing: then :class:`StoreUnavailableError`)."""
        attempt = 0
        while True:
            try:
                result: T = await self._run(self._on_connection, fn)
            except Exception as err:
                if not is_fault(err):
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

    async def _pause(self, attempt: int) -> None:
        """Wait before retrying a fault; cut short when the store is closing."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), retry_delay(attempt))

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection (store thread only)."""
        assert self._conn is not None, "store is not open"
        return self._conn

    # -- writing ---------------------------------------------------------------------------

    async def commit(self, ops: Iterable[Op]) -> None:
        """Apply ``ops`` in a transaction shared with concurrent callers; return once durable.

        While the store is failing this waits (the ops are retried with backoff) rather than
        fail: nothing is confirmed before it is kept, and nothing is dropped.
        """
        batch = list(ops)
        if not batch:
            return
        if self._closing.is_set() and not self.health.available:
            raise StoreUnavailableError(f"the store cannot be written ({self.health.error})")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((batch, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        carried: list[tuple[list[Op], asyncio.Future[None]]] = []
        attempt = 0
        while self._pending or carried:
            taken, self._pending = carried + self._pending, []
            carried = []
            try:
                await self._run(self._write_sync, [op for ops, _ in taken for op in ops])
            except Exception as err:
                if is_fault(err):
                    carried = await self._after_fault(taken, err, attempt)
                    attempt += 1
                    continue
                if len(taken) == 1:
                    _settle(taken[0][1], err)
                    continue
                # one caller's bad op must not fail its neighbours: retry each on its own
                for ops, future in taken:
                    try:
                        await self._run(self._write_sync, ops)
                    except Exception as single:
                        if is_fault(single):
                            carried.append((ops, future))
                        else:
                            _settle(future, single)
                    else:
                        _settle(future, None)
                continue
            attempt = 0
            self.health.succeeded(writing=True)
            for _, future in taken:
                _settle(future, None)

    async def _after_fault(self, taken: list[tuple[list[Op], asyncio.Future[None]]],
                           error: Exception, attempt: int,
                           ) -> list[tuple[list[Op], asyncio.Future[None]]]:
        """Keep ``taken`` for the next attempt (after a backoff pause); when closing, give up
        once the last attempt failed and tell each caller its work was not kept."""
        self._reopen = True
        self.health.failed(error, writing=True)
        if self._closing.is_set() and attempt > 0:
            failure = StoreUnavailableError(f"the store cannot be written ({self.health.error}); "
                                            "this work was not kept")
            for _, future in taken + self._pending:
                _settle(future, failure)
            self._pending = []
            return []
        await self._pause(attempt)
        return taken

    def _write_sync(self, ops: list[Op]) -> None:
        if self._reopen or self._conn is None:
            self._reopen_sync()
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                op(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a failed COMMIT may have rolled back by itself
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        self.commits += 1

    # -- retention -------------------------------------------------------------------------

    async def prune(self, finished_before: datetime, *, limit: int = 5000) -> int:
        """Delete up to ``limit`` alerts final since before ``finished_before`` with all their
        rows, and return their free pages to the file system; the number deleted."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def op(conn: sqlite3.Connection) -> None:
            if not future.done():  # a retried transaction runs its ops again
                future.set_result(prune_sync(conn, finished_before, limit))
        await self.commit([op])
        return future.result()

    # -- reading ---------------------------------------------------------------------------

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

def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    """Tell a waiting committer how its write ended."""
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
