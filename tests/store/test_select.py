"""``open_store``: the configuration picks the store, PostgreSQL at ``store.url``, else SQLite."""

from __future__ import annotations

from pathlib import Path

from alertline.config.sections import validate_config
from alertline.store.postgres import PostgresStore
from alertline.store.select import open_store
from alertline.store.sqlite import SqliteStore
from tests.postgres import PASSWORD, shared_server
from tests.store.samples import accepted


async def test_a_store_path_opens_the_embedded_sqlite_store(tmp_path: Path) -> None:
    store = open_store(validate_config({"store": {"path": str(tmp_path / "a.db")}}, {}))
    assert isinstance(store, SqliteStore) and store.path == str(tmp_path / "a.db")
    await store.open()
    try:
        await store.commit(accepted("al-1"))
    finally:
        await store.close()


async def test_a_store_url_opens_the_postgresql_store_without_showing_its_password() -> None:
    server = shared_server()
    url = server.url(server.new_database())
    store = open_store(validate_config({"store": {"url": url}}, {}))
    assert isinstance(store, PostgresStore)
    assert PASSWORD not in store.path and "127.0.0.1" in store.path
    await store.open()
    try:
        await store.commit(accepted("al-1", "k"))
        assert await store.alert_for_key("k") == "al-1"
    finally:
        await store.close()
