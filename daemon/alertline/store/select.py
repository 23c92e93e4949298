"""Which store a configuration asks for: PostgreSQL at ``store.url``, else SQLite at ``store.path``.

The one place a host turns its configuration into a :class:`~alertline.store.protocol.Store`, so
the daemon, the CLI and Home Assistant cannot disagree about it. The PostgreSQL store's module
(and psycopg) is imported only when a URL asks for it: a SQLite-only host never loads the driver.
"""

from __future__ import annotations

from alertline.config.sections import Config
from alertline.store.protocol import ClusterStore, Store
from alertline.store.sqlite import SqliteStore


def open_store(config: Config, *, exclusive: bool = True) -> Store:
    """An unopened store for ``config`` (``await store.open()`` connects and migrates).

    ``exclusive`` (SQLite only) takes the file's lock, so a second daemon on the same file fails
    at start; PostgreSQL is shared by design, so it has no such lock.
    """
    url = config.store_url
    if url is not None:
        from alertline.store.postgres import PostgresStore  # noqa: PLC0415 - driver on demand

        return PostgresStore(url)
    return SqliteStore(config.store_path, exclusive=exclusive)


def shared(store: Store) -> ClusterStore | None:
    """``store`` as a store daemons share (PostgreSQL), or None (the embedded SQLite one)."""
    from alertline.store.postgres import PostgresStore  # noqa: PLC0415 - driver on demand

    return store if isinstance(store, PostgresStore) else None
