"""What the PostgreSQL store does beyond the conformance suite: outages, migrations, secrets.

Against a real server (:mod:`tests.postgres`): a test that stops its server starts its own, the
others take a fresh database on the run's shared one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from alertline.store.errors import StoreOpenError, StoreUnavailableError
from alertline.store.intents import CounterAdd, OutboxAdd
from alertline.store.postgres import PostgresStore
from alertline.store.postgres_faults import is_fault
from alertline.store.postgres_schema import MIGRATIONS
from tests.mosquitto import free_port
from tests.postgres import PASSWORD, Postgres, running_postgres, shared_server
from tests.store.samples import HOUR, T0, accepted

SECRET_FORMS = (PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD))


def assert_no_password(text: str) -> None:
    """``text`` holds the test password in none of the forms it is written in."""
    for form in SECRET_FORMS:
        assert form not in text


@pytest.fixture
def own_server() -> Iterator[Postgres]:
    """A server of this test's own, free to be stopped and restarted."""
    with running_postgres() as server:
        yield server


@pytest.fixture
async def fresh_url() -> AsyncIterator[str]:
    """The URL of a fresh database on the run's shared server."""
    server = shared_server()
    yield server.url(server.new_database())


class Availability:
    """The store's health transitions, as events a test can await."""

    def __init__(self, store: PostgresStore) -> None:
        self.down = asyncio.Event()
        self.up = asyncio.Event()
        store.health.add_listener(self._changed)

    def _changed(self, available: bool) -> None:
        (self.up if available else self.down).set()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGQUIT], ids=["shutdown", "crash"])
async def test_a_commit_waits_out_a_stopped_server_and_completes_after_its_restart(
        own_server: Postgres, stop: signal.Signals, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = PostgresStore(own_server.url("postgres"), fault_timeout=0.5)
    await store.open()
    health = Availability(store)
    try:
        await store.commit(accepted("al-before"))
        own_server.stop(stop)
        commit = asyncio.create_task(store.commit(
            [*accepted("al-during", "key-during"), CounterAdd("sms", 1, HOUR),
             OutboxAdd((("t", b"during", False),), T0)]))
        read = asyncio.create_task(store.load_alert("al-before"))
        await asyncio.wait_for(health.down.wait(), 30)
        assert not commit.done() and not read.done()
        assert not store.health.available and store.health.error
        with pytest.raises(StoreUnavailableError):
            await store.stats()  # metrics do not wait

        await asyncio.to_thread(own_server.start)
        await asyncio.wait_for(commit, 60)
        assert (await asyncio.wait_for(read, 60)) is not None
        await asyncio.wait_for(health.up.wait(), 30)
        assert store.health.available and store.health.outages == 1
        assert await store.alert_for_key("key-during") == "al-during"
        assert await store.counter("sms", HOUR) == 1
        assert [p for _, _, p, _ in await store.outbox()] == [b"during"]
        assert (await store.stats())["alerts_total"] == 2
    finally:
        await store.close()
    assert_no_password(caplog.text)


async def test_a_database_turned_read_only_holds_commits_until_it_is_writable(
        fresh_url: str) -> None:
    server = shared_server()
    dbname = fresh_url.rsplit("/", 1)[1]
    store = PostgresStore(fresh_url, fault_timeout=0.5)
    await store.open()
    health = Availability(store)

    def sessions_become(read_only: bool) -> None:
        """What a failover to a standby looks like to the store: its sessions are cut and new
        ones cannot write (and the other way round)."""
        with server.admin() as conn:
            setting = "on" if read_only else "off"
            conn.execute(f"ALTER DATABASE {dbname} SET default_transaction_read_only = {setting}")
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,))
    try:
        await store.commit(accepted("al-1"))
        sessions_become(read_only=True)
        commit = asyncio.create_task(store.commit(accepted("al-2")))
        await asyncio.wait_for(health.down.wait(), 30)
        assert not commit.done()
        sessions_become(read_only=False)
        await asyncio.wait_for(commit, 60)
        assert await store.load_alert("al-2") is not None
        assert store.health.available
    finally:
        await store.close()


@pytest.mark.parametrize(("error", "fault"), [
    (pg_errors.DiskFull("could not extend file: No space left on device"), True),
    (pg_errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"), True),
    (pg_errors.AdminShutdown("terminating connection due to administrator command"), True),
    (pg_errors.CannotConnectNow("the database system is starting up"), True),
    (pg_errors.DeadlockDetected("deadlock detected"), True),
    (pg_errors.SerializationFailure("could not serialize access"), True),
    (pg_errors.TooManyConnections("too many clients already"), True),
    (psycopg.OperationalError("server closed the connection unexpectedly"), True),
    (PoolTimeout("couldn't get a connection after 5.00 sec"), True),
    (pg_errors.UniqueViolation("duplicate key value violates unique constraint"), False),
    (pg_errors.ForeignKeyViolation("violates foreign key constraint"), False),
    (pg_errors.StringDataRightTruncation("value too long"), False),
    (pg_errors.UndefinedTable("relation does not exist"), False),
    (ValueError("a bug"), False),
], ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None)
def test_faults_are_the_surroundings_and_rejections_the_data(error: Exception,
                                                             fault: bool) -> None:
    assert is_fault(error) is fault


async def test_daemons_opening_one_database_together_migrate_it_once(
        fresh_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="alertline.store.postgres_schema")
    stores = [PostgresStore(fresh_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        migrated = [r for r in caplog.records if "migrated to schema version" in r.getMessage()]
        assert len(migrated) == len(MIGRATIONS)
        assert all([await s.meta_get("schema_version") == str(len(MIGRATIONS))
                    for s in stores])
        # and they share it: a key taken through one store is taken for all
        await stores[0].commit(accepted("al-1", "shared-key"))
        await stores[1].commit(accepted("al-2", "shared-key"))
        assert await stores[3].alert_for_key("shared-key") == "al-1"
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_concurrent_daemons_never_share_an_outbox_sequence_number(fresh_url: str) -> None:
    first, second = PostgresStore(fresh_url), PostgresStore(fresh_url)
    await first.open()
    await second.open()
    try:
        await asyncio.gather(*(store.commit([OutboxAdd(((f"t/{n}", b"x", False),), T0)])
                               for n in range(20) for store in (first, second)))
        seqs = [seq for seq, *_ in await first.outbox()]
        assert len(seqs) == 40 and len(set(seqs)) == 40
    finally:
        await first.close()
        await second.close()


async def test_a_database_from_a_newer_alertline_is_not_opened(fresh_url: str) -> None:
    store = PostgresStore(fresh_url)
    await store.open()
    await store.close()
    with shared_server().admin(fresh_url.rsplit("/", 1)[1]) as conn:
        conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'",
                     (str(len(MIGRATIONS) + 1),))
    with pytest.raises(StoreOpenError, match="newer than this alertline"):
        await PostgresStore(fresh_url).open()


async def test_a_wrong_password_fails_to_open_without_showing_either_password(
        fresh_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng:pa@ss/" + PASSWORD[-8:]
    url = shared_server().url(fresh_url.rsplit("/", 1)[1], password=wrong)
    store = PostgresStore(url)
    with pytest.raises(StoreOpenError) as caught:
        await store.open()
    text = f"{caught.value} {caught.value.__cause__} {store.path} {caplog.text}"
    assert "password authentication failed" in text
    for form in (wrong, quote(wrong, safe="")):
        assert form not in text


async def test_an_unreachable_server_fails_to_open_naming_the_cause(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"postgresql://alertline:{quote(PASSWORD, safe='')}@127.0.0.1:{free_port()}/x"
    store = PostgresStore(url, connect_timeout=2)
    with pytest.raises(StoreOpenError, match="refused") as caught:
        await store.open()
    assert "127.0.0.1" in str(caught.value)
    assert_no_password(f"{caught.value} {store.path} {store.health.error} {caplog.text}")


class CommitAnswerThief:
    """A TCP proxy in front of the server that, once armed, lets one COMMIT through and cuts its
    client off before the answer arrives: the commit happened, the store cannot know."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.armed = False
        self.stolen = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening (connections end with their peers)."""
        if self._server is not None:
            self._server.close()

    async def _serve(self, client_in: asyncio.StreamReader,
                     client_out: asyncio.StreamWriter) -> None:
        server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target_port)
        cutting = asyncio.Event()

        async def upstream() -> None:
            while data := await client_in.read(65536):
                if self.armed and b"COMMIT\x00" in data:
                    self.armed = False
                    cutting.set()
                server_out.write(data)
                await server_out.drain()
            server_out.close()

        async def downstream() -> None:
            while data := await server_in.read(65536):
                if cutting.is_set():  # the server's answer to COMMIT: never delivered
                    client_out.transport.abort()
                    server_out.close()
                    self.stolen.set()
                    return
                client_out.write(data)
                await client_out.drain()
            client_out.close()

        with contextlib.suppress(ConnectionError):
            await asyncio.gather(upstream(), downstream())


async def test_a_commit_whose_answer_was_lost_is_not_applied_twice(fresh_url: str) -> None:
    server = shared_server()
    thief = CommitAnswerThief(server.port)
    await thief.start()
    url = fresh_url.replace(f":{server.port}/", f":{thief.port}/")
    store = PostgresStore(url, fault_timeout=2)
    await store.open()
    try:
        thief.armed = True
        # without the commit log the retry would insert al-1 again and be refused as a
        # duplicate of itself: a kept alert reported as rejected
        await asyncio.wait_for(store.commit([*accepted("al-1", "k"),
                                             OutboxAdd((("t", b"once", False),), T0)]), 60)
        assert thief.stolen.is_set()
        assert await store.alert_for_key("k") == "al-1"
        assert [p for _, _, p, _ in await store.outbox()] == [b"once"]
        await store.commit(accepted("al-2"))
        assert (await store.stats())["alerts_total"] == 2
    finally:
        await store.close()
        await thief.close()
