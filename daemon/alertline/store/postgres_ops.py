"""How the PostgreSQL store applies each write intent: the only place its writes become SQL.

:func:`apply` runs inside the transaction ``PostgresStore.commit`` shares with concurrent callers
(each caller's unit under a savepoint of its own); it dispatches on the intent's type (a ``match``
that mypy checks for exhaustiveness, like :mod:`alertline.store.sqlite_ops`). The statements keep
SQLite's behaviour: a taken idempotency key is ignored, a delivery is updated in place (so it keeps
its position), an outbox message's sequence number comes from an identity column (never reused).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import assert_never

from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import TupleRow

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
from alertline.store.sqlite_ops import item_json

__all__ = ["apply", "prune"]

Conn = AsyncConnection[TupleRow]


async def apply(conn: Conn, intent: Intent, *, owner: str | None = None) -> int | None:
    """Apply ``intent`` inside the caller's transaction; a count for those that have one (the
    alerts a prune deleted), else None. A new alert is owned by ``owner`` (the cluster member
    writing it, if any)."""
    async with conn.cursor() as cur:
        match intent:
            case InsertAlert():
                await _insert_alert(cur, intent, owner)
            case UpdateAlert():
                await cur.execute(
                    "UPDATE alerts SET status=%s, state=%s, final=%s, updated_at=%s WHERE id=%s",
                    (json.dumps(intent.status.to_json()), intent.state, intent.final, intent.at,
                     intent.alert_id))
            case SaveDeliveries():
                await _save_deliveries(cur, intent)
            case SetPhase():
                await cur.execute("UPDATE deliveries SET phase=%s WHERE id = ANY(%s)",
                                  (intent.phase, list(intent.delivery_ids)))
            case AppendEvents():
                await cur.executemany(
                    "INSERT INTO events(alert_id, delivery_id, at, kind, from_state, to_state, "
                    "provider_status, reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    [(a, d, at.isoformat(), k, f, t, p, r)
                     for a, d, at, k, f, t, p, r in intent.rows])
            case SaveSubmission():
                await _save_submission(cur, intent)
            case SetTimer():
                await cur.execute(
                    "INSERT INTO timers(key, due, data) VALUES (%s, %s, %s) ON CONFLICT (key) "
                    "DO UPDATE SET due=excluded.due, data=excluded.data",
                    (intent.key, intent.due, json.dumps(intent.data)))
            case DeleteTimer():
                await cur.execute("DELETE FROM timers WHERE key=%s", (intent.key,))
            case OutboxAdd():
                # one statement per message, in order: identity values follow insertion order
                await cur.executemany(
                    "INSERT INTO outbox(topic, payload, retain, created_at) "
                    "VALUES (%s, %s, %s, %s)",
                    [(t, p, r, intent.at) for t, p, r in intent.messages])
            case OutboxRemove():
                await cur.execute("DELETE FROM outbox WHERE seq = ANY(%s)", (list(intent.seqs),))
            case CounterAdd():
                await cur.execute(
                    "INSERT INTO counters(key, value, window_start) VALUES (%s, %s, %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = CASE WHEN counters.window_start = "
                    "excluded.window_start THEN counters.value + excluded.value "
                    "ELSE excluded.value END, window_start = excluded.window_start",
                    (intent.key, intent.amount, intent.window_start.isoformat()))
            case MetaSet():
                await cur.execute("INSERT INTO meta(key, value) VALUES (%s, %s) ON CONFLICT "
                                  "(key) DO UPDATE SET value = excluded.value",
                                  (intent.key, intent.value))
            case PruneFinished():
                return await prune(cur, intent.finished_before, intent.limit)
            case _:
                assert_never(intent)
    return None


async def _insert_alert(cur: AsyncCursor[TupleRow], intent: InsertAlert,
                        owner: str | None) -> None:
    alert = intent.alert
    await cur.execute(
        "INSERT INTO alerts(id, created_at, data, status, state, final, updated_at, owner) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (alert.id, alert.created_at, json.dumps(alert.to_json()),
         json.dumps(intent.status.to_json()), intent.state, intent.final, alert.created_at,
         owner))
    # a key another alert holds keeps pointing at it (also when that alert is being inserted by
    # another daemon right now: ON CONFLICT waits for its transaction, then ignores)
    await cur.executemany("INSERT INTO idempotency(key, alert_id, created_at) "
                          "VALUES (%s, %s, %s) ON CONFLICT (key) DO NOTHING",
                          [(k, alert.id, alert.created_at) for k in (alert.id, *intent.keys)])


async def _save_deliveries(cur: AsyncCursor[TupleRow], intent: SaveDeliveries) -> None:
    await cur.executemany(
        "INSERT INTO deliveries(id, alert_id, state, final, provider, phase, submission_id, "
        "provider_ref, provider_message_id, data) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
        "state=excluded.state, final=excluded.final, provider=excluded.provider, "
        "phase=excluded.phase, submission_id=excluded.submission_id, "
        "provider_ref=excluded.provider_ref, "
        "provider_message_id=excluded.provider_message_id, data=excluded.data",
        [(d.id, d.alert_id, d.state.value, d.state.final, d.provider, phase, submission_id,
          d.provider_ref, d.provider_message_id, json.dumps(d.to_json()))
         for d, phase, submission_id in intent.rows])


async def _save_submission(cur: AsyncCursor[TupleRow], intent: SaveSubmission) -> None:
    submission = intent.submission
    data = json.dumps({"data": submission.data,
                       "items": [item_json(i) for i in submission.items]})
    await cur.execute(
        "INSERT INTO submissions(id, provider, provider_ref, submitted_at, data) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET provider=excluded.provider, "
        "provider_ref=excluded.provider_ref, submitted_at=excluded.submitted_at, "
        "data=excluded.data",
        (intent.submission_id, intent.provider, submission.provider_ref,
         submission.submitted_at, data))


async def prune(cur: AsyncCursor[TupleRow], finished_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` alerts final since before ``finished_before`` (oldest first) with
    their deliveries, events, keys and the submissions no kept delivery uses; how many.

    ``SKIP LOCKED``: two daemons pruning at once take different alerts instead of waiting for
    each other. Commit-log entries older than a day go too (a lost COMMIT answer is settled
    within seconds, see ``PostgresStore``).
    """
    await cur.execute("SELECT id FROM alerts WHERE final AND updated_at < %s "
                      "ORDER BY updated_at LIMIT %s FOR UPDATE SKIP LOCKED",
                      (finished_before, limit))
    ids = [str(row[0]) for row in await cur.fetchall()]
    await cur.execute("DELETE FROM commit_log WHERE at < now() - interval '1 day'")
    if not ids:
        return 0
    await cur.execute("SELECT DISTINCT submission_id FROM deliveries WHERE alert_id = ANY(%s) "
                      "AND submission_id IS NOT NULL", (ids,))
    submissions = [str(row[0]) for row in await cur.fetchall()]
    await cur.execute("DELETE FROM events WHERE alert_id = ANY(%s)", (ids,))
    await cur.execute("DELETE FROM deliveries WHERE alert_id = ANY(%s)", (ids,))
    await cur.execute("DELETE FROM idempotency WHERE alert_id = ANY(%s)", (ids,))
    await cur.execute("DELETE FROM alerts WHERE id = ANY(%s)", (ids,))
    await cur.execute("DELETE FROM submissions s WHERE s.id = ANY(%s) AND NOT EXISTS "
                      "(SELECT 1 FROM deliveries d WHERE d.submission_id = s.id)",
                      (submissions,))
    return len(ids)
