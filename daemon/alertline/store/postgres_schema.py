"""The PostgreSQL schema, as numbered migrations, and the migration that daemons share safely.

Several daemons may open one database at the same moment (they start together after a deploy);
each migration therefore runs in a transaction that first takes a transaction-scoped advisory lock
and then re-reads the version, so the schema is migrated once and the others find it done.
Timestamps that the store compares (retention, timers) are ``timestamptz``; what the Protocol hands
out as text (an event's ``at``, a counter's window) stays the ISO text it was given, as in SQLite.
"""

from __future__ import annotations

import logging

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

_LOGGER = logging.getLogger(__name__)

# pg_advisory_xact_lock's key: any constant that other applications sharing the database are
# unlikely to use ("alertln" in ASCII)
MIGRATION_LOCK = 0x616C6572746C6E

MIGRATIONS: list[str] = [
    # 1: the initial schema (the SQLite one, plus the delivery order SQLite keeps by rowid and
    # the commit log that settles a COMMIT whose answer was lost)
    """
    CREATE TABLE alerts (
        id TEXT PRIMARY KEY,
        created_at TIMESTAMPTZ NOT NULL,
        data TEXT NOT NULL,
        status TEXT NOT NULL,
        state TEXT NOT NULL,
        final BOOLEAN NOT NULL DEFAULT FALSE,
        updated_at TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX alerts_open ON alerts(final) WHERE NOT final;
    CREATE INDEX alerts_finished ON alerts(updated_at) WHERE final;
    CREATE TABLE deliveries (
        seq BIGINT GENERATED ALWAYS AS IDENTITY,
        id TEXT PRIMARY KEY,
        alert_id TEXT NOT NULL REFERENCES alerts(id),
        state TEXT NOT NULL,
        final BOOLEAN NOT NULL,
        provider TEXT NOT NULL,
        phase TEXT NOT NULL,
        submission_id TEXT,
        provider_ref TEXT,
        provider_message_id TEXT,
        data TEXT NOT NULL
    );
    CREATE INDEX deliveries_alert ON deliveries(alert_id, seq);
    CREATE INDEX deliveries_open ON deliveries(final) WHERE NOT final;
    CREATE INDEX deliveries_ref ON deliveries(provider, provider_ref);
    CREATE INDEX deliveries_msg ON deliveries(provider, provider_message_id);
    CREATE INDEX deliveries_submission ON deliveries(submission_id);
    CREATE TABLE events (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        alert_id TEXT NOT NULL,
        delivery_id TEXT,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        from_state TEXT,
        to_state TEXT,
        provider_status TEXT,
        reason TEXT
    );
    CREATE INDEX events_alert ON events(alert_id, seq);
    CREATE TABLE idempotency (
        key TEXT PRIMARY KEY,
        alert_id TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX idempotency_alert ON idempotency(alert_id);
    CREATE TABLE submissions (
        id TEXT PRIMARY KEY,
        provider TEXT NOT NULL,
        provider_ref TEXT,
        submitted_at TIMESTAMPTZ NOT NULL,
        data TEXT NOT NULL
    );
    CREATE TABLE outbox (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        topic TEXT NOT NULL,
        payload BYTEA NOT NULL,
        retain BOOLEAN NOT NULL DEFAULT FALSE,
        created_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE counters (
        key TEXT PRIMARY KEY,
        value BIGINT NOT NULL,
        window_start TEXT NOT NULL
    );
    CREATE TABLE timers (
        key TEXT PRIMARY KEY,
        due TIMESTAMPTZ NOT NULL,
        data TEXT NOT NULL
    );
    CREATE TABLE commit_log (
        id UUID PRIMARY KEY,
        at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    """,
    # 2: the cluster (see alertline.store.postgres_cluster): members and their leases, the
    # owner of each open alert, singleton leases (the outbox), commands for another's alerts
    """
    ALTER TABLE alerts ADD COLUMN owner TEXT;
    CREATE INDEX alerts_owner ON alerts(owner) WHERE NOT final;
    CREATE TABLE cluster_members (
        member TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        client_id TEXT,
        started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        renewed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        expires_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE alert_commands (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        alert_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX alert_commands_alert ON alert_commands(alert_id);
    """,
]


class NewerSchemaError(Exception):
    """The database was migrated by a newer alertline than this one."""


async def migrate(conn: AsyncConnection[TupleRow], where: str) -> int:
    """Bring the database to the newest schema, one migration per transaction, each under the
    advisory lock; the schema version reached."""
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, "
                               "value TEXT)")
            cursor = await conn.execute("SELECT value FROM meta WHERE key='schema_version'")
            row = await cursor.fetchone()
            version = int(row[0]) if row else 0
            if version > len(MIGRATIONS):
                raise NewerSchemaError(
                    f"the database has schema version {version}, newer than this alertline "
                    f"knows ({len(MIGRATIONS)}): upgrade alertline")
            if version == len(MIGRATIONS):
                return version
            await conn.execute(MIGRATIONS[version].encode())
            await conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', %s) "
                               "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                               (str(version + 1),))
        _LOGGER.info("store %s migrated to schema version %d", where, version + 1)
