"""A cluster as real processes: PostgreSQL, Mosquitto, a provider emulator and N daemons.

Everything is a separate process on loopback, as in production: the PostgreSQL server of
:mod:`tests.postgres`, the Mosquitto broker of :mod:`tests.mosquitto`, the Retarus SMS REST
emulator of :mod:`bench.emulator_proc` (which logs every delivery id it was handed, so a test
can count submissions) and ``python -m alertline run`` per member. A member can be killed with
SIGKILL and started again; each start is a new cluster member name (``a.0``, ``a.1``...) with the
same MQTT client id, so the restarted daemon takes over its own broker session (the messages the
broker had handed to the dead one and were never acknowledged).

Waiting is polling another process's state (the database, the emulator's log, ``/healthz``) with
a deadline: there is no event to await across processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import psycopg
import yaml

from bench.harness import PASSWORD, USER, EmulatorProcess, mqtt_client
from tests.mosquitto import Mosquitto, free_port
from tests.postgres import Postgres

ROOT = Path(__file__).resolve().parents[2]
LEASE = 3.0  # seconds: a dead member's alerts are claimed this long after its last renewal
EXIT_EVICTED = 75  # a daemon whose lease was taken over exits with this
POLL = 0.05  # seconds between two looks at another process's state
T = TypeVar("T")


def wait_until(check: Callable[[], T | None], within: float, what: str) -> T:
    """``check()``'s first truthy answer, polled until ``within`` seconds are over; else an
    assertion naming ``what`` and the last answer."""
    deadline = time.monotonic() + within
    last: T | None = None
    while True:
        with contextlib.suppress(OSError, psycopg.OperationalError):
            last = check()
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {within:.1f}s (last: {last!r})")
        time.sleep(POLL)  # polling another process's state, there is no event to await


def daemon_env() -> dict[str, str]:
    """The environment of a daemon: this worktree's library first (the venv may hold another)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "daemon"), str(ROOT)])}


@dataclass
class Member:
    """One daemon of the cluster as a subprocess, started again after each kill."""

    name: str
    workdir: Path
    config: dict[str, Any]
    http_port: int = field(default_factory=free_port)
    starts: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def member(self) -> str:
        """The cluster member name of the current (or last) start."""
        return f"{self.name}.{self.starts - 1}"

    @property
    def log_path(self) -> Path:
        """The current start's log (stderr)."""
        return self.workdir / f"{self.member}.log"

    def start(self) -> None:
        """Start a new process under the next member name (readiness: :meth:`wait_ready`)."""
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        self.starts += 1
        config = json.loads(json.dumps(self.config))
        config["cluster"]["member"] = self.member
        path = self.workdir / f"{self.member}.yaml"
        path.write_text(yaml.safe_dump(config))
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "alertline", "run", "--config", str(path)],
                stdout=subprocess.DEVNULL, stderr=log, env=daemon_env(), cwd=self.workdir)

    def health(self) -> dict[str, Any] | None:
        """``/healthz``'s body (also when it answers 503), or None if nobody answers."""
        url = f"http://127.0.0.1:{self.http_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                body: dict[str, Any] = json.loads(answer.read())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read())
        except OSError:
            return None
        return body

    def wait_ready(self, within: float = 30.0) -> dict[str, Any]:
        """Wait until the daemon answers ``/healthz`` connected to the broker."""
        def ready() -> dict[str, Any] | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.member} exited with {self.proc.returncode}: "
                                     f"{self.log_path.read_text()[-3000:]}")
            body = self.health()
            return body if body and body.get("mqtt") == "connected" else None
        return wait_until(ready, within, f"{self.member} ready")

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        assert self.proc is not None and self.running, f"{self.member} is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the process is frozen (a long GC pause, a suspended VM), sockets open."""
        assert self.proc is not None and self.running, f"{self.member} is not running"
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL after 20 s); the exit code, None if it was not started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def logs(self) -> str:
        """Every start's log, for a failure message."""
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
                         for path in sorted(self.workdir.glob(f"{self.name}.*.log")))


class Store:
    """Reads the cluster's PostgreSQL database as a test sees it (a connection per question, so a
    server restart in between does no harm)."""

    def __init__(self, server: Postgres, dbname: str) -> None:
        self.server = server
        self.dbname = dbname

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """The rows of one query."""
        with self.server.admin(self.dbname) as conn:
            return list(conn.execute(sql.encode(), params).fetchall())

    def scalar(self, sql: str, *params: Any) -> Any:
        """The first column of the first row."""
        rows = self.rows(sql, *params)
        return rows[0][0] if rows else None

    def finals(self, prefix: str) -> int:
        """How many alerts whose id starts with ``prefix`` are final."""
        return int(self.scalar("SELECT count(*) FROM alerts WHERE final AND id LIKE %s",
                               prefix + "%"))

    def alert_ids(self, prefix: str) -> set[str]:
        """The ids of the alerts stored whose id starts with ``prefix``."""
        return {row[0] for row in self.rows("SELECT id FROM alerts WHERE id LIKE %s",
                                            prefix + "%")}

    def in_flight(self, owner: str | None = None) -> set[str]:
        """The deliveries handed to a provider whose answer is not stored (of ``owner``'s
        alerts; all of them for None)."""
        if owner is None:
            return {row[0] for row in self.rows(
                "SELECT id FROM deliveries WHERE phase = 'in_flight'")}
        return {row[0] for row in self.rows(
            "SELECT d.id FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
            "WHERE d.phase = 'in_flight' AND a.owner = %s", owner)}

    def member_listed(self, name: str) -> bool:
        """Whether ``name`` is still a member (a survivor removes it when taking over)."""
        return bool(self.rows("SELECT 1 FROM cluster_members WHERE member = %s", name))

    def idle_in_transaction(self) -> list[tuple[Any, ...]]:
        """Sessions with a transaction open and nothing running: (pid, seconds, last query)."""
        return self.rows(
            "SELECT pid, extract(epoch FROM now() - xact_start)::int, left(query, 80) "
            "FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%%'")

    def cut_stalled_sessions(self) -> int:
        """Terminate the sessions idle in a transaction for over a second (a live member's
        transactions do not stall that long: these are a frozen one's); how many."""
        return len(self.rows(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND state LIKE 'idle in transaction%%' AND now() - state_change > interval '1s'"))

    def owner(self, alert_id: str) -> str | None:
        """The member that owns an alert."""
        found = self.scalar("SELECT owner FROM alerts WHERE id = %s", alert_id)
        return str(found) if found is not None else None

    def describe(self, alert_id: str) -> str:
        """An alert's row, deliveries, pending commands and the members, for a failure message."""
        return "\n".join(f"{title}: {rows}" for title, rows in (
            ("alert", self.rows("SELECT id, state, final, owner FROM alerts WHERE id = %s",
                                alert_id)),
            ("deliveries", self.rows("SELECT id, state, phase FROM deliveries "
                                     "WHERE alert_id = %s ORDER BY seq", alert_id)),
            ("commands", self.rows("SELECT kind, data, at FROM alert_commands "
                                   "WHERE alert_id = %s", alert_id)),
            ("members", self.rows("SELECT member, pid, expires_at < now() FROM "
                                  "cluster_members")),
            ("timers", self.rows("SELECT key, due FROM timers WHERE key LIKE %s",
                                 f"%{alert_id}%"))))

    def open_work(self, prefix: str) -> str:
        """The open alerts by owner and their deliveries' phase and state, for a failure
        message."""
        open_work = self.rows(
            "SELECT a.owner, d.phase, d.state, count(*), min(a.id) FROM alerts a JOIN "
            "deliveries d ON d.alert_id = a.id WHERE NOT a.final AND a.id LIKE %s "
            "GROUP BY 1, 2, 3", prefix + "%")
        members = self.rows("SELECT member, expires_at < now() FROM cluster_members")
        return f"open (owner, phase, state, count, an example): {open_work}; members: {members}"

    def outbox(self) -> str:
        """What waits in the outbox and who may publish it, for a failure message."""
        return (f"outbox: {self.rows('SELECT count(*), min(seq), max(seq) FROM outbox')}; "
                f"leases: {self.rows('SELECT name, owner, expires_at < now() FROM leases')}")

    def alert(self, alert_id: str) -> dict[str, Any]:
        """An alert's stored state and final flag."""
        rows = self.rows("SELECT state, final FROM alerts WHERE id = %s", alert_id)
        return {"state": rows[0][0], "final": rows[0][1]} if rows else {}


class Reports:
    """Follows ``alertline/report/+`` and keeps the latest final report of each alert, and
    ``alertline/error`` (what the daemons refused, by alert id)."""

    def __init__(self, broker: Mosquitto) -> None:
        self.final: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.client = mqtt_client(broker.port, f"chaos-reports-{free_port()}", self._on_report,
                                  ("alertline/report/+", "alertline/error"))

    def _on_report(self, _c: Any, _u: Any, message: Any) -> None:
        report = json.loads(message.payload)
        if message.topic.endswith("/error"):
            with self._lock:
                self.errors.setdefault(str(report.get("id")), []).append(report)
        elif report.get("final"):
            with self._lock:
                self.final[str(report["id"])] = report

    def get(self, alert_id: str) -> dict[str, Any] | None:
        """The latest final report of an alert."""
        with self._lock:
            return self.final.get(alert_id)

    def count(self, prefix: str) -> int:
        """How many alerts whose id starts with ``prefix`` have a final report."""
        with self._lock:
            return sum(1 for alert_id in self.final if alert_id.startswith(prefix))

    def close(self) -> None:
        """Stop following."""
        self.client.disconnect()
        self.client.loop_stop()


class Stream:
    """Publishes alerts (QoS 1, each with its own id) at a steady rate from a thread."""

    def __init__(self, broker: Mosquitto, payloads: list[dict[str, Any]], rate: float) -> None:
        self.payloads = payloads
        self.rate = rate
        self.published = 0  # handed to paho; the broker has them once `done` is set
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.client = mqtt_client(broker.port, f"chaos-publisher-{free_port()}")
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Stream:
        """Start publishing."""
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            infos: list[mqtt.MQTTMessageInfo] = []
            started = time.monotonic()
            for index, payload in enumerate(self.payloads):
                pause = started + index / self.rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # pacing the load, not synchronising
                infos.append(self.client.publish("alertline/send", json.dumps(payload), qos=1))
                self.published = index + 1
            for info in infos:
                info.wait_for_publish(60)
        except BaseException as error:  # reported by wait()
            self.error = error
        finally:
            self.done.set()

    def wait(self, within: float = 120.0) -> None:
        """Wait until the broker acknowledged every message."""
        assert self.done.wait(within), f"only {self.published} published within {within}s"
        if self.error is not None:
            raise self.error

    def ids(self, start: int, end: int | None = None) -> list[str]:
        """The ids of the payloads ``start``..``end``."""
        return [str(p["id"]) for p in self.payloads[start:end]]

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def publish(broker: Mosquitto, topic: str, payload: dict[str, Any] | None = None) -> None:
    """One QoS 1 message, returned once the broker has it."""
    client = mqtt_client(broker.port, f"chaos-once-{free_port()}")
    try:
        client.publish(topic, json.dumps(payload or {}), qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


@dataclass
class Cluster:
    """The processes of one test: a database, a broker, an emulator and the members."""

    workdir: Path
    server: Postgres
    dbname: str
    broker: Mosquitto
    emulator: EmulatorProcess
    members: list[Member] = field(default_factory=list)
    evicted: list[str] = field(default_factory=list)

    @property
    def store(self) -> Store:
        """The database as the test reads it."""
        return Store(self.server, self.dbname)

    def config(self, name: str, **sections: Any) -> dict[str, Any]:
        """A member's config: shared store and broker, its own client id and HTTP port."""
        base = self.emulator.base_url
        config: dict[str, Any] = {
            "mqtt": {"host": "127.0.0.1", "port": self.broker.port,
                     "client_id": f"alertline-{name}", "discovery": False, "keepalive": 5},
            "store": {"url": self.server.url(self.dbname)},
            "http": {"host": "127.0.0.1"},
            "providers": {"retarus": {
                "type": "retarus_sms", "base_url": base, "status_urls": [base],
                "username": USER, "password": PASSWORD, "poll_interval": 0.5,
                "retry_base_delay": 0.05}},
            "defaults": {"provider": "retarus"},
            "logging": {"level": "WARNING"},
            "cluster": {"lease": LEASE},
            **sections,
        }
        return config

    def add(self, name: str, provider: dict[str, Any] | None = None, **sections: Any) -> Member:
        """A member (not started yet); ``provider`` adds settings to the Retarus provider."""
        workdir = self.workdir / name
        workdir.mkdir(parents=True, exist_ok=True)
        member = Member(name, workdir, self.config(name, **sections))
        member.config["providers"]["retarus"].update(provider or {})
        member.config["http"]["port"] = member.http_port
        self.members.append(member)
        return member

    def start(self, *members: Member) -> None:
        """Start ``members`` (all when none are named) and wait until each is ready."""
        for member in members or self.members:
            member.start()
        for member in members or self.members:
            member.wait_ready()

    def revive(self) -> None:
        """Start again each member that exited because its lease was taken over (code 75), as
        the systemd unit's ``Restart=on-failure`` does; any other exit fails the test."""
        for member in self.members:
            if member.proc is None or member.running:
                continue
            code = member.proc.returncode
            assert code == EXIT_EVICTED, (
                f"{member.member} exited with {code}: {member.log_path.read_text()[-3000:]}")
            self.evicted.append(member.member)
            member.start()
            member.wait_ready()

    def by_member_name(self, name: str) -> Member:
        """The member whose current start is called ``name``."""
        for member in self.members:
            if member.member == name:
                return member
        raise AssertionError(f"no member {name!r} among {[m.member for m in self.members]}")

    def submitted(self) -> dict[str, list[float]]:
        """When the emulator received each delivery id (every time it did)."""
        times: dict[str, list[float]] = {}
        for at, ref in self.emulator.submissions():
            times.setdefault(ref, []).append(at)
        return times

    def logs(self) -> str:
        """The members' logs, for a failure message."""
        return "\n".join(member.logs() for member in self.members)


@contextlib.contextmanager
def running_cluster(workdir: Path, server: Postgres) -> Iterator[Cluster]:
    """A broker, an emulator and a fresh database on ``server``; members stopped on exit."""
    broker = Mosquitto(workdir=workdir / "mosquitto")
    broker.start()
    try:
        with EmulatorProcess(workdir, latency=0.02, refs=True) as emulator:
            cluster = Cluster(workdir, server, server.new_database(), broker, emulator)
            try:
                yield cluster
            finally:
                for member in cluster.members:
                    member.stop()
    finally:
        broker.stop()
