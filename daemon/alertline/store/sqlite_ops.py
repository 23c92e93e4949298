"""How the SQLite store applies each write intent: the only place writes become SQL.

:func:`apply` runs on the store's thread inside the transaction that ``Store.commit`` shares with
concurrent callers; it dispatches on the intent's type (a ``match`` that mypy checks for
exhaustiveness, so a new intent cannot be forgotten here).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, assert_never

from alertline.providers.base import SubmittedItem
from alertline.store.intents import (
    AppendEvents,
    CounterAdd,
    DeleteTimer,
    InsertAlert,
    Intent,
    MetaSet,
    OutboxAdd,
    OutboxRemove,
    PruneFinished,
    SaveDeliveries,
    SaveSubmission,
    SetPhase,
    SetTimer,
    UpdateAlert,
)
from alertline.store.sqlite_retention import prune_sync

__all__ = ["apply", "item_json"]


def apply(conn: sqlite3.Connection, intent: Intent) -> int | None:
    """Apply ``intent`` inside the caller's transaction; a count for those that have one (the
    alerts a prune deleted), else None."""
    match intent:
        case InsertAlert():
            _insert_alert(conn, intent)
        case UpdateAlert():
            _update_alert(conn, intent)
        case SaveDeliveries():
            _save_deliveries(conn, intent)
        case SetPhase():
            conn.executemany("UPDATE deliveries SET phase=? WHERE id=?",
                             [(intent.phase, delivery_id) for delivery_id in intent.delivery_ids])
        case AppendEvents():
            _append_events(conn, intent)
        case SaveSubmission():
            _save_submission(conn, intent)
        case SetTimer():
            conn.execute("INSERT OR REPLACE INTO timers(key, due, data) VALUES (?, ?, ?)",
                         (intent.key, intent.due.isoformat(), json.dumps(intent.data)))
        case DeleteTimer():
            conn.execute("DELETE FROM timers WHERE key=?", (intent.key,))
        case OutboxAdd():
            stamp = intent.at.isoformat()
            conn.executemany("INSERT INTO outbox(topic, payload, retain, created_at) "
                             "VALUES (?, ?, ?, ?)",
                             [(t, p, int(r), stamp) for t, p, r in intent.messages])
        case OutboxRemove():
            # runs of consecutive seqs (the usual case: a published batch) in one statement each
            conn.executemany("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", _runs(intent.seqs))
        case CounterAdd():
            _counter_add(conn, intent)
        case MetaSet():
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                         (intent.key, intent.value))
        case PruneFinished():
            return prune_sync(conn, intent.finished_before, intent.limit)
        case _:
            assert_never(intent)
    return None


def item_json(item: SubmittedItem) -> dict[str, Any]:
    """How a submitted item is stored with its submission."""
    return {"delivery_id": item.delivery_id, "number": item.number,
            "provider_message_id": item.provider_message_id}


def _insert_alert(conn: sqlite3.Connection, intent: InsertAlert) -> None:
    alert = intent.alert
    created = alert.created_at.isoformat()
    conn.execute("INSERT INTO alerts(id, created_at, data, status, state, final, updated_at)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (alert.id, created, json.dumps(alert.to_json()),
                  json.dumps(intent.status.to_json()), intent.state, int(intent.final), created))
    conn.executemany("INSERT OR IGNORE INTO idempotency(key, alert_id, created_at) "
                     "VALUES (?, ?, ?)",
                     [(k, alert.id, created) for k in (alert.id, *intent.keys)])


def _update_alert(conn: sqlite3.Connection, intent: UpdateAlert) -> None:
    conn.execute("UPDATE alerts SET status=?, state=?, final=?, updated_at=? WHERE id=?",
                 (json.dumps(intent.status.to_json()), intent.state, int(intent.final),
                  intent.at.isoformat(), intent.alert_id))


def _save_deliveries(conn: sqlite3.Connection, intent: SaveDeliveries) -> None:
    values = [(d.id, d.alert_id, d.state.value, int(d.state.final), d.provider, phase,
               submission_id, d.provider_ref, d.provider_message_id, json.dumps(d.to_json()))
              for d, phase, submission_id in intent.rows]
    # an upsert updates the row in place (REPLACE would delete and re-insert it, touching every
    # index twice, and move the delivery to the end of its alert's list)
    conn.executemany(
        "INSERT INTO deliveries(id, alert_id, state, final, provider, phase, "
        "submission_id, provider_ref, provider_message_id, data) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
        "state=excluded.state, final=excluded.final, provider=excluded.provider, "
        "phase=excluded.phase, submission_id=excluded.submission_id, "
        "provider_ref=excluded.provider_ref, "
        "provider_message_id=excluded.provider_message_id, data=excluded.data", values)


def _append_events(conn: sqlite3.Connection, intent: AppendEvents) -> None:
    conn.executemany("INSERT INTO events(alert_id, delivery_id, at, kind, from_state, "
                     "to_state, provider_status, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     [(a, d, at.isoformat(), k, f, t, p, r)
                      for a, d, at, k, f, t, p, r in intent.rows])


def _save_submission(conn: sqlite3.Connection, intent: SaveSubmission) -> None:
    submission = intent.submission
    data = json.dumps({"data": submission.data,
                       "items": [item_json(i) for i in submission.items]})
    conn.execute("INSERT OR REPLACE INTO submissions(id, provider, provider_ref, "
                 "submitted_at, data) VALUES (?, ?, ?, ?, ?)",
                 (intent.submission_id, intent.provider, submission.provider_ref,
                  submission.submitted_at.isoformat(), data))


def _counter_add(conn: sqlite3.Connection, intent: CounterAdd) -> None:
    conn.execute(
        "INSERT INTO counters(key, value, window_start) VALUES (?, ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = CASE WHEN window_start = excluded."
        "window_start THEN value + excluded.value ELSE excluded.value END, "
        "window_start = excluded.window_start",
        (intent.key, intent.amount, intent.window_start.isoformat()))


def _runs(values: tuple[int, ...]) -> list[tuple[int, int]]:
    """``[1, 2, 3, 7, 8]`` -> ``[(1, 3), (7, 8)]``."""
    runs: list[tuple[int, int]] = []
    for value in sorted(set(values)):
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs
