"""The outbox drainer over any broker: the daemon's bridge, or Home Assistant's MQTT client,
which publishes one message at a time and fails a publish while the broker is away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alertline import OutboxPublisher, SqliteStore, Store
from alertline.mqtt.bridge import PublishError
from alertline.store import intents

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class FakeBroker:
    """Records what it is handed; ``failing`` fails publishes like an unreachable broker."""

    def __init__(self) -> None:
        self.connected = True
        self.failing: BaseException | None = None
        self.handed: list[str] = []
        self.published: list[str] = []
        self.was_handed = asyncio.Event()

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.handed.append(topic)
        self.was_handed.set()
        await asyncio.sleep(0)
        if self.failing is not None:
            raise self.failing
        self.published.append(topic)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = SqliteStore(tmp_path / "outbox.db")
    await opened.open()
    yield opened
    await opened.close()


async def _queue(store: Store, *topics: str) -> None:
    await store.commit([intents.outbox_add([(t, b"{}", False) for t in topics], T0)])


async def _drained(store: Store, publisher: OutboxPublisher) -> list[str]:
    assert await publisher.flush(5)
    return [topic for _, topic, _, _ in await store.outbox()]


async def _run_until_drained(store: Store, publisher: OutboxPublisher) -> None:
    task = asyncio.create_task(publisher.run())
    try:
        assert await _drained(store, publisher) == []
    finally:
        task.cancel()
        await publisher.close()


async def test_one_at_a_time_in_order_then_removed(store: Store) -> None:
    broker = FakeBroker()
    publisher = OutboxPublisher(store, broker, window=1, refused=())
    await _queue(store, "r/1", "r/2", "r/3")
    await _run_until_drained(store, publisher)
    assert broker.published == ["r/1", "r/2", "r/3"]
    assert publisher.published == 3


async def test_a_failed_publish_waits_in_the_outbox_until_notified(store: Store) -> None:
    broker = FakeBroker()
    broker.failing = ConnectionError("broker unreachable")
    publisher = OutboxPublisher(store, broker, window=1, refused=())
    await _queue(store, "r/1", "r/2")
    task = asyncio.create_task(publisher.run())
    try:
        await asyncio.wait_for(broker.was_handed.wait(), 5)  # the first attempt, no news after
        for _ in range(20):
            await asyncio.sleep(0)
        assert broker.handed == ["r/1"]  # stopped at the first failure, not retried in a loop
        assert [t for _, t, _, _ in await store.outbox()] == ["r/1", "r/2"]

        broker.failing = None
        publisher.notify()  # the broker is back
        assert await _drained(store, publisher) == []
    finally:
        task.cancel()
        await publisher.close()
    assert broker.published == ["r/1", "r/2"]  # in order, each once


async def test_news_during_a_failing_publish_is_not_lost(store: Store) -> None:
    """The broker comes back while a failed publish is still being answered (the failure is
    handled a moment after the connection hook ran): the drain goes on, it does not wait for a
    report that may never come. Home Assistant's CI once showed this order."""
    broker = FakeBroker()
    broker.failing = ConnectionError("broker unreachable")
    publisher = OutboxPublisher(store, broker, window=1, refused=())
    original = broker.publish

    async def fail_then_come_back(topic: str, payload: bytes, *, retain: bool = False) -> None:
        try:
            await original(topic, payload, retain=retain)
        finally:
            if broker.failing is not None:
                broker.failing = None
                publisher.notify()  # the connection hook, before the failure reaches the drain

    broker.publish = fail_then_come_back  # type: ignore[method-assign]
    await _queue(store, "r/1", "r/2")
    await _run_until_drained(store, publisher)
    assert broker.handed == ["r/1", "r/1", "r/2"]
    assert broker.published == ["r/1", "r/2"]


async def test_nothing_is_handed_over_while_disconnected(store: Store) -> None:
    broker = FakeBroker()
    broker.connected = False
    publisher = OutboxPublisher(store, broker, window=1, refused=())
    await _queue(store, "r/1")
    task = asyncio.create_task(publisher.run())
    try:
        publisher.notify()
        for _ in range(20):
            await asyncio.sleep(0)
        assert broker.handed == []
        broker.connected = True
        publisher.notify()
        assert await _drained(store, publisher) == []
    finally:
        task.cancel()
        await publisher.close()
    assert broker.published == ["r/1"]


async def test_a_refused_message_is_dropped(store: Store) -> None:
    broker = FakeBroker()
    broker.failing = PublishError("the broker refused the message")
    publisher = OutboxPublisher(store, broker)  # the daemon's defaults
    await _queue(store, "r/1")
    await _run_until_drained(store, publisher)
    assert publisher.refused == 1
    assert broker.published == []
