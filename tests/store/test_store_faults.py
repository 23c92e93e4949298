"""The store on a file system that fills up or turns read-only: commits wait, nothing is lost.

Real file systems mounted by the test (:mod:`tests.filesystems`): a tmpfs filled to ENOSPC and an
ext4 that a real file system error turns read-only.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alertline.model import Alert, AlertState, AlertStatus
from alertline.store import intents
from alertline.store.health import StoreHealth, retry_delay
from alertline.store.intents import Intent
from alertline.store.sqlite import SqliteStore, StoreUnavailableError
from alertline.store.sqlite_faults import is_fault
from tests.engine_harness import T0, EngineHarness
from tests.filesystems import failing_ext4, fillable_disk

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
WAIT = 20.0


def _alert(alert_id: str, text: str = "x" * 200) -> Alert:
    return Alert(id=alert_id, message=text, recipients=(), channels=(), created_at=NOW)


def _insert(alert_id: str) -> list[Intent]:
    return [intents.insert_alert(_alert(alert_id), AlertStatus(), "pending", False,
                                  [f"key-{alert_id}"])]


async def _count(store: SqliteStore) -> int:
    return int((await store.stats())["alerts_total"])


async def _commit_until_blocked(store: SqliteStore,
                                prefix: str) -> tuple[list[asyncio.Task[None]], int]:
    """Commit alerts one by one until a commit stops returning (the store is failing)."""
    tasks: list[asyncio.Task[None]] = []
    for index in range(100_000):
        task = asyncio.create_task(store.commit(_insert(f"{prefix}-{index}")))
        tasks.append(task)
        done, _ = await asyncio.wait({task}, timeout=1.0)
        if not done:
            return tasks, index
        task.result()
    raise AssertionError("the store never failed")


async def test_a_full_disk_makes_commits_wait_and_they_complete_when_space_returns(
        tmp_path: Path) -> None:
    with fillable_disk(tmp_path / "disk", size="4m") as disk:
        store = SqliteStore(disk.mountpoint / "alertline.db", exclusive=True)
        await store.open()
        await store.commit(_insert("before"))
        disk.fill()
        waiting, failed_at = await _commit_until_blocked(store, "during")

        assert not store.health.available
        assert "full" in store.health.error.lower()
        # more work while it fails: it waits too, it is not refused and not dropped
        more = [asyncio.create_task(store.commit(_insert(f"more-{i}")))
                for i in range(20)]
        await asyncio.sleep(0)
        assert not any(task.done() for task in [*waiting, *more][-21:])

        disk.free()
        await asyncio.wait_for(asyncio.gather(*waiting, *more), WAIT)
        assert store.health.available and store.health.outages == 1
        assert await _count(store) == 1 + failed_at + 1 + 20
        assert await store.alert_for_key(f"key-during-{failed_at}") == f"during-{failed_at}"
        await store.close()


async def test_a_file_system_turned_read_only_is_repaired_and_mounted_again(
        tmp_path: Path) -> None:
    with failing_ext4(tmp_path / "ext4") as disk:
        store = SqliteStore(disk.mountpoint / "alertline.db", exclusive=True)
        await store.open()
        await store.commit(_insert("before"))
        disk.fail()
        blocked = asyncio.create_task(store.commit(_insert("during")))
        down = asyncio.get_running_loop().create_future()
        store.health.add_listener(lambda ok: None if ok or down.done() else down.set_result(1))
        await asyncio.wait_for(down, WAIT)
        assert not blocked.done()

        disk.repair()
        await asyncio.wait_for(blocked, WAIT)
        assert store.health.available
        assert await _count(store) == 2
        await store.close()

        reopened = SqliteStore(disk.mountpoint / "alertline.db")
        await reopened.open()
        assert await reopened.alert_for_key("key-during") == "during"
        await reopened.close()


async def test_closing_a_failing_store_fails_what_it_could_not_keep(tmp_path: Path) -> None:
    with fillable_disk(tmp_path / "disk", size="4m") as disk:
        store = SqliteStore(disk.mountpoint / "alertline.db")
        await store.open()
        disk.fill()
        waiting, _ = await _commit_until_blocked(store, "x")
        await asyncio.wait_for(store.close(), WAIT)
        with pytest.raises(StoreUnavailableError, match="not kept"):
            await waiting[-1]
        disk.free()


async def test_reads_racing_the_close_of_a_failing_store_do_not_keep_its_lock(
        tmp_path: Path) -> None:
    """A read the loop hands to the store thread while it closes must not connect (and lock)
    again: the next start of the daemon would find its own store "in use"."""
    with fillable_disk(tmp_path / "disk", size="4m") as disk:
        path = disk.mountpoint / "alertline.db"
        store = SqliteStore(path, exclusive=True)
        await store.open()
        disk.fill()
        await _commit_until_blocked(store, "x")
        closing = asyncio.create_task(store.close())
        readers: list[asyncio.Task[dict[str, Any]]] = []
        for _ in range(200):  # reads arriving all through the close (a bounded number)
            readers.append(asyncio.create_task(store.stats()))
            await asyncio.sleep(0)
        await asyncio.wait_for(asyncio.gather(closing, *readers, return_exceptions=True), WAIT)
        disk.free()
        again = SqliteStore(path, exclusive=True)
        await again.open()
        await again.close()


def _error_of(path: Path, make: str) -> sqlite3.Error:
    """A real SQLite error of the kind ``make`` names."""
    writer = sqlite3.connect(path, isolation_level=None, timeout=0)
    writer.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER PRIMARY KEY)")
    try:
        if make == "busy":
            writer.execute("BEGIN IMMEDIATE")
            other = sqlite3.connect(path, isolation_level=None, timeout=0)
            other.execute("BEGIN IMMEDIATE")
        elif make == "readonly":
            sqlite3.connect(f"file:{path}?mode=ro", uri=True).execute("INSERT INTO t VALUES (1)")
        elif make == "constraint":
            writer.execute("INSERT INTO t VALUES (1)")
            writer.execute("INSERT INTO t VALUES (1)")
        else:
            writer.execute("SELECT * FROM nowhere")
    except sqlite3.Error as err:
        return err
    raise AssertionError(f"no error for {make}")


@pytest.mark.parametrize(("make", "fault"), [
    ("busy", True), ("readonly", True), ("constraint", False), ("bad_sql", False)])
def test_faults_are_the_stores_surroundings_not_the_data(tmp_path: Path, make: str,
                                                           fault: bool) -> None:
    assert is_fault(_error_of(tmp_path / "t.db", make)) is fault


def test_retries_back_off_from_a_tenth_of_a_second_to_five_seconds() -> None:
    assert [retry_delay(n) for n in (0, 1, 2, 5, 6, 100)] == [0.1, 0.2, 0.4, 3.2, 5.0, 5.0]


def test_a_flapping_store_logs_its_outage_once_not_once_per_flap(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="alertline.store.health")
    health = StoreHealth("/var/lib/alertline/alertline.db")
    changes: list[bool] = []
    health.add_listener(changes.append)
    full = sqlite3.OperationalError("database or disk is full")
    for _ in range(50):  # a disk at its last bytes: fails, works, fails...
        health.failed(full, writing=True)
        health.failed(full, writing=True)
        health.succeeded(writing=True)

    assert changes == [False, True] * 50  # listeners (status topic, health) follow every change
    assert health.outages == 50 and health.failed_attempts == 100
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING"]
    assert "database or disk is full" in caplog.records[0].getMessage()


def test_a_read_does_not_end_an_outage_a_write_began() -> None:
    health = StoreHealth("alertline.db")
    health.failed(sqlite3.OperationalError("disk I/O error"), writing=True)
    health.succeeded(writing=False)
    assert not health.available
    health.succeeded(writing=True)
    assert health.available


async def test_polls_and_held_sends_due_while_the_store_fails_run_once_it_works(
        tmp_path: Path) -> None:
    with failing_ext4(tmp_path / "ext4") as disk:
        harness = EngineHarness(disk.mountpoint / "alertline.db")
        engine = await harness.start(providers={"sim": harness.simulator()})
        polled = await harness.send(engine, to="+491701234560", id="polled")
        held = await harness.send(engine, to="+491701234561", id="held",
                                  not_before=(T0 + timedelta(seconds=10)).isoformat())
        down = asyncio.get_running_loop().create_future()
        engine.store.health.add_listener(
            lambda ok: None if ok or down.done() else down.set_result(None))
        disk.fail()

        # the poll (due in 0.5 s) and the held send (10 s) fall due while nothing can be written
        advancing = asyncio.create_task(harness.advance(engine, 60))
        await asyncio.wait_for(down, WAIT)
        assert not advancing.done()
        disk.repair()
        await asyncio.wait_for(advancing, WAIT)

        for accepted in (polled, held):
            report = await engine.wait_final(accepted.alert_id, timeout=WAIT)
            assert report.state is AlertState.DELIVERED, accepted.alert_id
        await harness.close()
        with sqlite3.connect(disk.mountpoint / "alertline.db") as conn:  # and kept so
            assert conn.execute("SELECT id, state, final FROM alerts ORDER BY id").fetchall() == [
                ("held", "delivered", 1), ("polled", "delivered", 1)]


async def test_work_under_way_when_the_store_fails_is_not_confirmed_but_goes_on() -> None:
    health = StoreHealth("alertline.db")
    release = asyncio.Event()

    async def apply() -> str:
        await release.wait()
        return "kept"

    work = asyncio.ensure_future(apply())
    answering = asyncio.create_task(health.unless_failing(work))
    await asyncio.sleep(0)  # let it start waiting
    health.failed(sqlite3.OperationalError("database or disk is full"), writing=True)
    with pytest.raises(StoreUnavailableError, match="disk is full"):
        await asyncio.wait_for(answering, WAIT)
    release.set()
    assert await work == "kept"
    # once it works again, an answer is given as usual
    health.succeeded(writing=True)
    assert await health.unless_failing(apply()) == "kept"
