"""A real PostgreSQL server for tests: initdb into a temporary directory, a free loopback port.

Like :mod:`tests.mosquitto` for the broker: the store is held to a real server, not a fake. The
server runs as the ``postgres`` system user (PostgreSQL refuses to run as root, and the tests do),
with ``fsync`` off (a test's data need not survive a power loss, only a server crash), password
authentication over TCP (so the store's URL carries a real password, which the tests check is
never shown) and trust over its Unix socket in the temporary directory (how the fixtures create
databases). One server serves
a whole test run (:func:`shared_server`), each test a fresh database from it
(:meth:`Postgres.new_database`); a test that stops and restarts a server starts its own.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from urllib.parse import quote

import psycopg

from tests.mosquitto import free_port

_BINDIRS = sorted(glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
BINDIR = Path(_BINDIRS[-1]) if _BINDIRS else Path("/usr/lib/postgresql/missing/bin")
USER = "alertline"
# characters a URL must escape, so redaction is tested on the escaped form too
PASSWORD = "s3cr:t@Pg/pw%" + uuid.uuid4().hex[:8]


def _as_postgres(command: list[str]) -> list[str]:
    """``command`` run as the ``postgres`` system user when we are root (initdb and postgres
    refuse root)."""
    if os.geteuid() != 0:
        return command
    # setpriv execs the command in place (runuser would fork and keep the signals we send)
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
            "--reset-env", *command]


@dataclass
class Postgres:
    """One PostgreSQL server with its data directory under ``workdir``."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        return self.workdir / "data"

    def init(self) -> None:
        """Create the cluster (superuser ``alertline`` with :data:`PASSWORD`)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            for path in (self.workdir, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        done = subprocess.run(_as_postgres([
            str(BINDIR / "initdb"), "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256", "--auth-local=trust", "--no-sync", "-E", "UTF8",
            "--locale=C"]), check=False, capture_output=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.decode()}")

    def start(self) -> None:
        """Start (or restart) the server on the same port; return once it answers queries."""
        log = open(self.workdir / "postgres.log", "ab")  # noqa: SIM115 - the server's stderr
        self.proc = subprocess.Popen(_as_postgres([
            str(BINDIR / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-k", str(self.workdir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
            # but synchronous_commit stays on: a commit must survive the server's crash (the
            # process, not the machine), which the outage tests cause
            "-c", "full_page_writes=off",
            "-c", "max_connections=200"]), stdout=log, stderr=log)
        log.close()
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        """Block until a query works (a readiness probe, not a sleep)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: "
                                   f"{(self.workdir / 'postgres.log').read_text()[-2000:]}")
            with contextlib.suppress(psycopg.OperationalError), self.admin() as conn:
                conn.execute("SELECT 1")
                return
            time.sleep(0.05)  # polling a server for readiness, there is no event to await
        raise RuntimeError(f"postgres did not answer on {self.port} within {timeout}s")

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection over the Unix socket (trust: no password)."""
        return psycopg.connect(host=str(self.workdir), port=self.port, user=USER,
                               dbname=dbname, autocommit=True, connect_timeout=2)

    def url(self, dbname: str, *, password: str = PASSWORD) -> str:
        """The store URL of ``dbname`` over TCP, with the password."""
        return (f"postgresql://{USER}:{quote(password, safe='')}@127.0.0.1:{self.port}/"
                f"{dbname}")

    def new_database(self) -> str:
        """A fresh, empty database's name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return name

    def stop(self, sig: int = signal.SIGINT) -> None:
        """Shut the server down: ``SIGINT`` is PostgreSQL's fast shutdown (clients are cut off
        with ``admin_shutdown``), ``SIGQUIT`` its immediate one (like a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(60)
        self.proc = None


def _workdir() -> Path:
    """A new directory the ``postgres`` user can reach (pytest's ``tmp_path`` sits below a
    directory only root may enter)."""
    return Path(tempfile.mkdtemp(prefix="alertline-pg-"))


@contextlib.contextmanager
def running_postgres(kind: type[Postgres] | None = None) -> Iterator[Postgres]:
    """A new, started server (of ``kind``, a :class:`Postgres` by default) that is stopped (and
    its files removed) on exit."""
    server = (kind or Postgres)(workdir=_workdir())
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


_SHARED: list[Postgres] = []


def shared_server() -> Postgres:
    """The test run's one server, started on first use and stopped when the run ends."""
    if not _SHARED:
        workdir = _workdir()
        server = Postgres(workdir=workdir)
        server.init()
        server.start()
        _SHARED.append(server)

        def stop() -> None:
            server.stop()
            shutil.rmtree(workdir, ignore_errors=True)
        atexit.register(stop)
    return _SHARED[0]
