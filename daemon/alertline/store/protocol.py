"""The Store Protocol: what the engine, the daemon, Home Assistant, on-call and the web pages
need from a store, and all they may assume.

Units of work go in (ordered :mod:`~alertline.store.intents`, kept atomically or not at all);
typed records come out (the model's :class:`~alertline.model.Alert`,
:class:`~alertline.model.AlertStatus` and :class:`~alertline.model.Delivery`, and
:mod:`alertline.store.stored`). Errors are :mod:`alertline.store.errors`, never a driver's. The
SQLite store (:mod:`alertline.store.sqlite`) and the PostgreSQL one
(:mod:`alertline.store.postgres`, psycopg 3) implement it, both held to the
:mod:`tests.store.test_conformance` suite; :func:`alertline.store.select.open_store` picks one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from alertline.model import Alert, AlertStatus
from alertline.store.health import StoreHealth
from alertline.store.intents import Intent, UnitOfWork
from alertline.store.stored import Command, Member, OpenWork, Reservation, StoredDelivery


class Store(Protocol):
    """A durable store of alerts, deliveries, events, timers, counters and the MQTT outbox.

    While the store is failing (a *fault*: disk, network, lock), ``commit`` and the reads wait
    with backoff rather than fail, so nothing unkept is ever confirmed; :attr:`health` tells
    the hosts (``/healthz``, MQTT status) meanwhile. Only ``close`` ends that wait, with
    :class:`~alertline.store.errors.StoreUnavailableError`; a closed store raises
    :class:`~alertline.store.errors.StoreClosedError`.
    """

    path: str
    """Where the store is, for messages: a file path, or a URL without its password."""

    @property
    def health(self) -> StoreHealth:
        """The store's availability: outages, their cause and listeners."""
        ...

    @property
    def commits(self) -> int:
        """Transactions committed so far (a metric: group commit makes it less than units)."""
        ...

    async def open(self) -> None:
        """Connect and migrate to the current schema; ``StoreOpenError`` or ``StoreBusyError``
        when that cannot be done."""
        ...

    async def close(self) -> None:
        """Finish pending units of work and release the store; later calls raise
        ``StoreClosedError``."""
        ...

    async def commit(self, work: UnitOfWork | Iterable[Intent]) -> None:
        """Keep ``work``'s intents, in order, all or none; return once durable.

        Concurrent units are all kept (a store may share one transaction between them); a unit
        the data refuses (an alert id that exists) raises ``StoreRejectedError`` and leaves
        nothing, without failing its neighbours.
        """
        ...

    async def prune(self, finished_before: datetime, *, limit: int = 5000) -> int:
        """Delete up to ``limit`` alerts final since before ``finished_before`` (oldest first)
        with their rows; how many were deleted."""
        ...

    async def alert_for_key(self, key: str) -> str | None:
        """The alert id registered under idempotency ``key`` (an alert's id is one of its keys)."""
        ...

    async def load_alert(self, alert_id: str) -> tuple[Alert, AlertStatus,
                                                        list[StoredDelivery]] | None:
        """An alert, its status and its deliveries (in the order they were first saved)."""
        ...

    async def load_open_work(self) -> OpenWork:
        """Every alert that is not final, with its deliveries, their submissions and all
        timers: what a restart resumes."""
        ...

    async def find_deliveries(self, provider: str, provider_ref: str | None,
                              message_id: str | None) -> list[str]:
        """Alert ids whose deliveries match a provider message id, else a provider job (for a
        pushed status)."""
        ...

    async def outbox(self, limit: int = 1000, *,
                     after: int = 0) -> list[tuple[int, str, bytes, bool]]:
        """The oldest queued MQTT messages ``(seq, topic, payload, retain)`` with seq > ``after``,
        in seq order."""
        ...

    async def meta_get(self, key: str) -> str | None:
        """A value a host keeps in the store (see ``MetaSet``)."""
        ...

    async def counter(self, key: str, window_start: datetime) -> int:
        """A rate counter's value in the window starting at ``window_start`` (0 in any other)."""
        ...

    async def events(self, alert_id: str) -> list[dict[str, Any]]:
        """An alert's event log, oldest first: dicts of ``delivery_id, at, kind, from_state,
        to_state, provider_status, reason`` (``at`` as ISO 8601 text)."""
        ...

    async def recent_alerts(self, limit: int = 50) -> list[tuple[Alert, str, bool, datetime]]:
        """The newest alerts ``(alert, state, final, updated_at)``, open ones first."""
        ...

    async def stats(self) -> dict[str, Any]:
        """Counts for metrics: ``deliveries`` (``"provider|state"`` → count), ``alerts_open``,
        ``alerts_total``, ``outbox``; ``StoreUnavailableError`` at once while failing."""
        ...


class ClusterStore(Protocol):
    """What daemons sharing one store (a cluster) need of it besides :class:`Store`: members
    with leases, one owner per open alert, singleton leases, commands for another member's
    alerts and caps counted atomically across members. The PostgreSQL store implements it (see
    :mod:`alertline.store.postgres_cluster`); the embedded SQLite store, one daemon's, does not.
    """

    member: str | None

    async def join(self, member: str, host: str, pid: int, lease: float,
                   client_id: str | None = None) -> None:
        """Register ``member`` (and its MQTT client id) with a lease of ``lease`` seconds; its
        writes are fenced from now (:class:`~alertline.store.errors.StoreFencedError` once
        taken over)."""
        ...

    async def renew(self, member: str, lease: float) -> bool:
        """Extend the lease; False if the member was taken over."""
        ...

    async def leave(self, member: str) -> None:
        """Remove the member and its leases."""
        ...

    async def members(self) -> list[Member]:
        """Every registered member."""
        ...

    async def remove_expired(self, member: str) -> list[str | None]:
        """Remove the other members whose lease ran out; their MQTT client ids."""
        ...

    async def claim_orphans(self, member: str, limit: int = 1000) -> list[str]:
        """Take open alerts no live member owns; the ids taken."""
        ...

    async def load_work_of(self, alert_ids: Sequence[str]) -> OpenWork:
        """The open work of ``alert_ids``, with every timer."""
        ...

    async def owner_of(self, alert_id: str) -> tuple[str | None, bool, bool] | None:
        """``(owner, final, alive)`` of an alert, None if unknown."""
        ...

    async def hold_lease(self, name: str, member: str, lease: float) -> bool:
        """Take or extend the singleton lease ``name``; whether ``member`` holds it."""
        ...

    async def release_lease(self, name: str, member: str) -> None:
        """Give the singleton lease ``name`` up if ``member`` holds it."""
        ...

    async def send_command(self, alert_id: str, kind: str, data: dict[str, Any]) -> int:
        """Leave a command for the alert's owner; its seq."""
        ...

    async def commands_for(self, member: str, limit: int = 100) -> list[Command]:
        """Commands waiting for alerts ``member`` owns."""
        ...

    async def command_pending(self, seq: int) -> bool:
        """Whether command ``seq`` waits still."""
        ...

    async def commands_done(self, seqs: Sequence[int]) -> None:
        """Forget carried-out commands."""
        ...

    async def reserve(self, caps: Sequence[tuple[str, datetime, int]],
                      wanted: int) -> Reservation:
        """Take up to ``wanted`` sends under every cap at once, atomically."""
        ...
