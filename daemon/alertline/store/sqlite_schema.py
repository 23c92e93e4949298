"""The SQLite schema, as numbered migrations (the store applies those it has not yet)."""

import logging
import sqlite3

_LOGGER = logging.getLogger(__name__)

AUTO_VACUUM_INCREMENTAL = 2

MIGRATIONS: list[str] = [
    # 1: the initial schema
    """
    CREATE TABLE alerts (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        data TEXT NOT NULL,
        status TEXT NOT NULL,
        state TEXT NOT NULL,
        final INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX alerts_open ON alerts(final) WHERE final = 0;
    CREATE TABLE deliveries (
        id TEXT PRIMARY KEY,
        alert_id TEXT NOT NULL REFERENCES alerts(id),
        state TEXT NOT NULL,
        final INTEGER NOT NULL,
        provider TEXT NOT NULL,
        phase TEXT NOT NULL,
        submission_id TEXT,
        provider_ref TEXT,
        provider_message_id TEXT,
        data TEXT NOT NULL
    );
    CREATE INDEX deliveries_alert ON deliveries(alert_id);
    CREATE INDEX deliveries_open ON deliveries(final) WHERE final = 0;
    CREATE INDEX deliveries_ref ON deliveries(provider, provider_ref);
    CREATE INDEX deliveries_msg ON deliveries(provider, provider_message_id);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id TEXT NOT NULL,
        delivery_id TEXT,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        from_state TEXT,
        to_state TEXT,
        provider_status TEXT,
        reason TEXT
    );
    CREATE INDEX events_alert ON events(alert_id);
    CREATE TABLE idempotency (
        key TEXT PRIMARY KEY,
        alert_id TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE submissions (
        id TEXT PRIMARY KEY,
        provider TEXT NOT NULL,
        provider_ref TEXT,
        submitted_at TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        retain INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE TABLE counters (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL,
        window_start TEXT NOT NULL
    );
    CREATE TABLE timers (
        key TEXT PRIMARY KEY,
        due TEXT NOT NULL,
        data TEXT NOT NULL
    );
    """,
    # 2: retention (#12.14) finds finished alerts by age, and an alert's idempotency keys; the
    # switch to auto_vacuum=INCREMENTAL that goes with it is ensure_incremental_vacuum()
    """
    CREATE INDEX alerts_finished ON alerts(updated_at) WHERE final = 1;
    CREATE INDEX idempotency_alert ON idempotency(alert_id);
    CREATE INDEX deliveries_submission ON deliveries(submission_id);
    """,
]


def ensure_incremental_vacuum(conn: sqlite3.Connection, path: str) -> None:
    """Make the file give pages freed by retention back (``auto_vacuum=INCREMENTAL``).

    A new file gets the setting before its first table; a file made before schema version 2 has
    ``auto_vacuum=NONE``, which only a ``VACUUM`` can change: done once here (it rewrites the file
    and needs as much free space again, so it is logged).
    """
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == AUTO_VACUUM_INCREMENTAL:
        return
    _LOGGER.warning("store %s: switching to incremental vacuum (a one-time VACUUM that rewrites "
                    "the file)", path)
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("VACUUM")
