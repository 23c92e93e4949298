"""The store's write operations: pure builders of functions the store thread runs in a
transaction (``Store.commit`` groups them with concurrent callers' into one)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from alertline.model import Alert, AlertStatus, Delivery
from alertline.providers.base import Submission, SubmittedItem

Op = Callable[[sqlite3.Connection], None]


def item_json(item: SubmittedItem) -> dict[str, Any]:
    """How a submitted item is stored with its submission."""
    return {"delivery_id": item.delivery_id, "number": item.number,
            "provider_message_id": item.provider_message_id}


def _runs(values: list[int]) -> list[tuple[int, int]]:
    """``[1, 2, 3, 7, 8]`` -> ``[(1, 3), (7, 8)]``."""
    runs: list[tuple[int, int]] = []
    for value in sorted(set(values)):
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


class StoreOps:
    """The op builders, as static methods of :class:`~alertline.store.sqlite.Store`."""

    @staticmethod
    def op_insert_alert(alert: Alert, status: AlertStatus, state: str, final: bool,
                        keys: Iterable[str] = ()) -> Op:
        """Insert a new alert and its idempotency keys."""
        created = alert.created_at.isoformat()
        data = json.dumps(alert.to_json())
        status_json = json.dumps(status.to_json())
        key_list = [alert.id, *keys]

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO alerts(id, created_at, data, status, state, final, "
                         "updated_at)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (alert.id, created, data, status_json, state, int(final), created))
            conn.executemany("INSERT OR IGNORE INTO idempotency(key, alert_id, created_at) "
                             "VALUES (?, ?, ?)", [(k, alert.id, created) for k in key_list])
        return op

    @staticmethod
    def op_update_alert(alert_id: str, status: AlertStatus, state: str, final: bool,
                        at: datetime) -> Op:
        """Store an alert's status and summary state."""
        status_json = json.dumps(status.to_json())
        stamp = at.isoformat()

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE alerts SET status=?, state=?, final=?, updated_at=? WHERE id=?",
                         (status_json, state, int(final), stamp, alert_id))
        return op

    @staticmethod
    def op_save_deliveries(rows: list[tuple[Delivery, str, str | None]]) -> Op:
        """Insert or replace deliveries with their ``(phase, submission_id)``."""
        values = [(d.id, d.alert_id, d.state.value, int(d.state.final), d.provider, phase,
                   submission_id, d.provider_ref, d.provider_message_id, json.dumps(d.to_json()))
                  for d, phase, submission_id in rows]

        def op(conn: sqlite3.Connection) -> None:
            # an upsert updates the row in place (REPLACE would delete and re-insert it,
            # touching every index twice)
            conn.executemany(
                "INSERT INTO deliveries(id, alert_id, state, final, provider, phase, "
                "submission_id, provider_ref, provider_message_id, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "state=excluded.state, final=excluded.final, provider=excluded.provider, "
                "phase=excluded.phase, submission_id=excluded.submission_id, "
                "provider_ref=excluded.provider_ref, "
                "provider_message_id=excluded.provider_message_id, data=excluded.data", values)
        return op

    @staticmethod
    def op_set_phase(delivery_ids: list[str], phase: str) -> Op:
        """Move deliveries to another outbox phase (nothing else about them changed)."""
        values = [(phase, delivery_id) for delivery_id in delivery_ids]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany("UPDATE deliveries SET phase=? WHERE id=?", values)
        return op

    @staticmethod
    def op_events(rows: list[tuple[str, str | None, datetime, str, str | None, str | None,
                                   str | None, str | None]]) -> Op:
        """Append events ``(alert_id, delivery_id, at, kind, from, to, status, reason)``."""
        values = [(a, d, at.isoformat(), k, f, t, p, r) for a, d, at, k, f, t, p, r in rows]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT INTO events(alert_id, delivery_id, at, kind, from_state, "
                             "to_state, provider_status, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             values)
        return op

    @staticmethod
    def op_save_submission(submission_id: str, provider: str, submission: Submission) -> Op:
        """Remember a provider request so it can be polled after a restart."""
        data = json.dumps({"data": submission.data,
                           "items": [item_json(i) for i in submission.items]})

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO submissions(id, provider, provider_ref, "
                         "submitted_at, data) VALUES (?, ?, ?, ?, ?)",
                         (submission_id, provider, submission.provider_ref,
                          submission.submitted_at.isoformat(), data))
        return op

    @staticmethod
    def op_set_timer(key: str, due: datetime, data: dict[str, Any]) -> Op:
        """Persist a timer (escalation step, held send) so it survives restarts."""
        payload = json.dumps(data)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO timers(key, due, data) VALUES (?, ?, ?)",
                         (key, due.isoformat(), payload))
        return op

    @staticmethod
    def op_delete_timer(key: str) -> Op:
        """Forget a timer."""
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM timers WHERE key=?", (key,))
        return op

    @staticmethod
    def op_outbox_add(messages: list[tuple[str, bytes, bool]], at: datetime) -> Op:
        """Queue MQTT messages ``(topic, payload, retain)`` for publishing."""
        stamp = at.isoformat()

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT INTO outbox(topic, payload, retain, created_at) "
                             "VALUES (?, ?, ?, ?)",
                             [(t, p, int(r), stamp) for t, p, r in messages])
        return op

    @staticmethod
    def op_outbox_remove(seqs: list[int]) -> Op:
        """Drop published outbox messages (runs of consecutive seqs in one statement each)."""
        ranges = _runs(seqs)

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", ranges)
        return op

    @staticmethod
    def op_counter_add(key: str, amount: int, window_start: datetime) -> Op:
        """Add to a rate counter, resetting it when its window changed."""
        start = window_start.isoformat()

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO counters(key, value, window_start) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = CASE WHEN window_start = excluded."
                "window_start THEN value + excluded.value ELSE excluded.value END, "
                "window_start = excluded.window_start", (key, amount, start))
        return op

    @staticmethod
    def op_meta_set(key: str, value: str) -> Op:
        """Set a ``meta`` value (see :meth:`meta_get`)."""
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
        return op
