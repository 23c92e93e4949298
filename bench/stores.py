"""The stores the benchmark runs the daemon on: SQLite, PostgreSQL with one daemon, with two.

``BENCH_STORES`` (default ``sqlite,postgres,postgres2``) picks them, in order:

- ``sqlite``: one daemon on its own SQLite file (``synchronous=FULL``), as in production;
- ``postgres``: one daemon on a PostgreSQL database;
- ``postgres2``: two daemons on one PostgreSQL database (cluster mode), taking the MQTT messages
  through one shared subscription, so each alert reaches one of them.

The PostgreSQL server is :class:`tests.postgres.Postgres` (initdb into a temporary directory, a free
loopback port), but started with ``fsync`` and ``full_page_writes`` on, PostgreSQL's defaults: the
tests turn them off because a test's data need not survive a power loss, while the SQLite store it
is compared with syncs every commit. ``BENCH_PG_FSYNC=0`` runs it as the tests do.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.postgres import BINDIR, Postgres, _as_postgres, running_postgres

# name → how many daemons share the store
STORES = {"sqlite": 1, "postgres": 1, "postgres2": 2}


def chosen_stores() -> list[str]:
    """The store choices named in ``BENCH_STORES``, checked."""
    names = [n.strip() for n in os.environ.get(
        "BENCH_STORES", "sqlite,postgres,postgres2").split(",") if n.strip()]
    unknown = [n for n in names if n not in STORES]
    if unknown or not names:
        raise SystemExit(f"BENCH_STORES: unknown {unknown or names}; choose from "
                         f"{', '.join(STORES)}")
    return names


class BenchPostgres(Postgres):
    """The tests' server, durable like a production one unless ``BENCH_PG_FSYNC=0``."""

    def start(self) -> None:
        """Start the server with ``fsync`` (and ``full_page_writes``) on or off."""
        sync = "on" if os.environ.get("BENCH_PG_FSYNC", "1") == "1" else "off"
        log = open(self.workdir / "postgres.log", "ab")  # noqa: SIM115 - the server's stderr
        self.proc = subprocess.Popen(_as_postgres([
            str(BINDIR / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-k", str(self.workdir), "-c", "listen_addresses=127.0.0.1",
            "-c", f"fsync={sync}", "-c", f"full_page_writes={sync}",
            "-c", "max_connections=200"]), stdout=log, stderr=log)
        log.close()
        self._wait_ready()


@contextlib.contextmanager
def postgres_server(names: list[str]) -> Iterator[Postgres | None]:
    """A started server when any choice needs PostgreSQL (stopped and removed on exit)."""
    if not any(n.startswith("postgres") for n in names):
        yield None
        return
    with running_postgres(BenchPostgres) as server:
        yield server


@dataclass
class BenchStore:
    """One store for one phase of the bench (a fresh file or database), and its daemons' count."""

    choice: str
    workdir: Path
    phase: str
    server: Postgres | None
    database: str | None = None
    _empty_bytes: int = 0

    @property
    def daemons(self) -> int:
        """How many daemons share this store."""
        return STORES[self.choice]

    @property
    def db_path(self) -> Path:
        """The SQLite file (``sqlite``)."""
        return self.workdir / f"{self.phase}-{self.choice}.db"

    def create(self) -> None:
        """A new, empty database for PostgreSQL choices (SQLite files are created by the
        daemon)."""
        if self.server is not None and self.choice != "sqlite":
            self.database = self.server.new_database()
            self._empty_bytes = self._database_bytes()

    def config(self) -> dict[str, Any]:
        """The daemons' ``store:`` section."""
        if self.choice == "sqlite":
            return {"path": str(self.db_path)}
        assert self.server is not None and self.database is not None
        return {"url": self.server.url(self.database)}

    def _database_bytes(self) -> int:
        assert self.server is not None
        with self.server.admin() as conn:
            row = conn.execute("SELECT pg_database_size(%s)", (self.database,)).fetchone()
        return int(row[0]) if row else 0  # type: ignore[call-overload]

    def bytes(self) -> int:
        """What the run's alerts take: the SQLite file and its WAL, or the database's growth
        since it was created (tables, indexes, dead rows autovacuum has not reclaimed yet)."""
        if self.choice == "sqlite":
            return sum(p.stat().st_size for p in
                       (self.db_path, self.db_path.with_name(self.db_path.name + "-wal"))
                       if p.exists())
        return self._database_bytes() - self._empty_bytes
