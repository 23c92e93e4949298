"""The store implementations the conformance suite runs against.

Each entry of :data:`IMPLEMENTATIONS` gives a fresh, empty place for a store (a file, a database)
for one test and a way to open a store there, as often as the test likes (a reopened store must
find what an earlier one kept). The PostgreSQL store joined the suite with one entry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from alertline.store.postgres import PostgresStore
from alertline.store.protocol import Store
from alertline.store.sqlite import SqliteStore
from tests.postgres import shared_server

StoreFactory = Callable[[], Store]
"""Makes an unopened store over the test's place (open it, close it)."""


@asynccontextmanager
async def sqlite_place(tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """A SQLite file in the test's temporary directory."""
    path = tmp_path / "conformance.db"

    def make() -> Store:
        return SqliteStore(path, exclusive=True)
    yield make


@asynccontextmanager
async def postgres_place(tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """A fresh database on the test run's PostgreSQL server (:mod:`tests.postgres`)."""
    url = shared_server().url(shared_server().new_database())

    def make() -> Store:
        return PostgresStore(url)
    yield make


IMPLEMENTATIONS: dict[str, Callable[[Path], AbstractAsyncContextManager[StoreFactory]]] = {
    "sqlite": sqlite_place,
    "postgres": postgres_place,
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
async def new_store(request: pytest.FixtureRequest,
                    tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """A factory of stores over one fresh place, for each implementation."""
    async with IMPLEMENTATIONS[request.param](tmp_path) as factory:
        yield factory


@pytest.fixture
async def store(new_store: StoreFactory) -> AsyncIterator[Store]:
    """An open store over a fresh place, closed after the test."""
    opened = new_store()
    await opened.open()
    yield opened
    await opened.close()
