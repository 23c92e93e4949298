"""What a caller asks the store to keep: typed write intents, committed as one unit of work.

A caller never writes SQL (nor builds functions that do): it describes each change as a frozen
intent and hands an ordered list of them to ``Store.commit``, which applies them atomically, in
order. Every store implementation (SQLite today, PostgreSQL next) turns the same intents into its
own statements, and :mod:`tests.store.test_conformance` holds each to the same behaviour.

Callers build intents with the constructors at the end of this module (``intents.set_timer(key,
due, data)``), which take any iterable and freeze it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alertline.model import Alert, AlertStatus, Delivery
from alertline.providers.base import Submission

EventRow = tuple[str, str | None, datetime, str, str | None, str | None, str | None, str | None]
"""An event: ``(alert_id, delivery_id, at, kind, from_state, to_state, provider_status,
reason)``."""


@dataclass(frozen=True, slots=True)
class InsertAlert:
    """A new alert and its idempotency keys (its own id is always one); a key that is taken
    already keeps pointing at its first alert."""

    alert: Alert
    status: AlertStatus
    state: str
    final: bool
    keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UpdateAlert:
    """An alert's new status and summary state (``at`` is when; retention counts from it)."""

    alert_id: str
    status: AlertStatus
    state: str
    final: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class SaveDeliveries:
    """Insert deliveries, or replace them in place, with their ``(phase, submission_id)``;
    a delivery keeps its position among its alert's deliveries when it is replaced."""

    rows: tuple[tuple[Delivery, str, str | None], ...]


@dataclass(frozen=True, slots=True)
class SetPhase:
    """Move deliveries to another outbox phase (nothing else about them changed)."""

    delivery_ids: tuple[str, ...]
    phase: str


@dataclass(frozen=True, slots=True)
class AppendEvents:
    """Append to alerts' event logs, in this order."""

    rows: tuple[EventRow, ...]


@dataclass(frozen=True, slots=True)
class SaveSubmission:
    """A provider request that was made, so it can be polled after a restart."""

    submission_id: str
    provider: str
    submission: Submission


@dataclass(frozen=True, slots=True)
class SetTimer:
    """A timer (escalation step, held send) that survives restarts; replaces one of that key."""

    key: str
    due: datetime
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DeleteTimer:
    """Forget a timer (nothing happens if there is none)."""

    key: str


@dataclass(frozen=True, slots=True)
class OutboxAdd:
    """Queue MQTT messages ``(topic, payload, retain)`` for publishing, in this order; each gets
    a sequence number larger than any before it (never reused, so a drainer's cursor holds)."""

    messages: tuple[tuple[str, bytes, bool], ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class OutboxRemove:
    """Drop published outbox messages by sequence number."""

    seqs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CounterAdd:
    """Add to a rate counter, restarting it when its window is not the stored one."""

    key: str
    amount: int
    window_start: datetime


@dataclass(frozen=True, slots=True)
class MetaSet:
    """Set a host's value in the store (e.g. the discovery configs it published)."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class PruneFinished:
    """Delete up to ``limit`` alerts final since before ``finished_before`` (oldest first) with
    their deliveries, events, keys and the submissions no kept delivery uses."""

    finished_before: datetime
    limit: int


Intent = (InsertAlert | UpdateAlert | SaveDeliveries | SetPhase | AppendEvents | SaveSubmission
          | SetTimer | DeleteTimer | OutboxAdd | OutboxRemove | CounterAdd | MetaSet
          | PruneFinished)
"""Every change a store can be asked to make."""

"""The name the engine still uses for an intent (from the days ops were closures)."""


@dataclass(frozen=True, slots=True)
class UnitOfWork:
    """Ordered intents that are kept together or not at all."""

    intents: tuple[Intent, ...]

    @classmethod
    def of(cls, work: UnitOfWork | Iterable[Intent]) -> UnitOfWork:
        """``work`` as a unit (a list of intents becomes one, a unit stays itself)."""
        return work if isinstance(work, UnitOfWork) else cls(tuple(work))

    def __iter__(self) -> Iterator[Intent]:
        """The intents in the order they are applied."""
        return iter(self.intents)

    def __len__(self) -> int:
        """How many intents the unit holds (an empty unit commits nothing)."""
        return len(self.intents)


# -- constructors: what callers write (iterables in, the frozen intent out) -----------------


def insert_alert(alert: Alert, status: AlertStatus, state: str, final: bool,
                    keys: Iterable[str] = ()) -> InsertAlert:
    """Insert a new alert and its idempotency keys."""
    return InsertAlert(alert, status, state, final, tuple(keys))


def update_alert(alert_id: str, status: AlertStatus, state: str, final: bool,
                    at: datetime) -> UpdateAlert:
    """Store an alert's status and summary state."""
    return UpdateAlert(alert_id, status, state, final, at)


def save_deliveries(rows: Iterable[tuple[Delivery, str, str | None]]) -> SaveDeliveries:
    """Insert or replace deliveries with their ``(phase, submission_id)``."""
    return SaveDeliveries(tuple(rows))


def set_phase(delivery_ids: Iterable[str], phase: str) -> SetPhase:
    """Move deliveries to another outbox phase."""
    return SetPhase(tuple(delivery_ids), phase)


def events(rows: Iterable[EventRow]) -> AppendEvents:
    """Append events ``(alert_id, delivery_id, at, kind, from, to, status, reason)``."""
    return AppendEvents(tuple(rows))


def save_submission(submission_id: str, provider: str,
                       submission: Submission) -> SaveSubmission:
    """Remember a provider request so it can be polled after a restart."""
    return SaveSubmission(submission_id, provider, submission)


def set_timer(key: str, due: datetime, data: dict[str, Any]) -> SetTimer:
    """Persist a timer (escalation step, held send) so it survives restarts."""
    return SetTimer(key, due, data)


def delete_timer(key: str) -> DeleteTimer:
    """Forget a timer."""
    return DeleteTimer(key)


def outbox_add(messages: Iterable[tuple[str, bytes, bool]], at: datetime) -> OutboxAdd:
    """Queue MQTT messages ``(topic, payload, retain)`` for publishing."""
    return OutboxAdd(tuple(messages), at)


def outbox_remove(seqs: Iterable[int]) -> OutboxRemove:
    """Drop published outbox messages."""
    return OutboxRemove(tuple(seqs))


def counter_add(key: str, amount: int, window_start: datetime) -> CounterAdd:
    """Add to a rate counter, resetting it when its window changed."""
    return CounterAdd(key, amount, window_start)


def meta_set(key: str, value: str) -> MetaSet:
    """Set a ``meta`` value (see ``meta_get``)."""
    return MetaSet(key, value)
