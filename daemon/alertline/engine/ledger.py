"""The ledger: the one writer of delivery states, outbox phases, alert status, escalation progress.

The engine's helpers decide (:mod:`alertline.engine.decisions`); the ledger applies their decisions
to the open alerts in memory, checking every move against the tables of :mod:`alertline.states`,
writes each change as one unit of work (deliveries, alert row, events, counters, timers, outbox
messages) with ``store.commit``, and only then tells the listeners. Nothing else changes a
delivery's state, an alert's status, a submission's phase or an escalation's progress.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

from alertline.clock import Clock
from alertline.engine.decisions import (
    AddDelivery,
    Advance,
    Annotate,
    CountSend,
    Decision,
    DropTimer,
    EndAlert,
    Queue,
    Reroute,
    SetEscalation,
    SetPhase,
    SetTimer,
)
from alertline.errors import NotFoundError
from alertline.model import Delivery, Report
from alertline.records import Accepted, AlertRecord
from alertline.states import (
    AlertState,
    Phase,
    can_transition,
    check_alert_transition,
    check_phase_transition,
    phase_after,
)
from alertline.store import intents
from alertline.store.intents import Intent
from alertline.store.protocol import Store

__all__ = ["AcceptedSink", "FinalHook", "Ledger", "OutboxSink", "QueueFn", "ReportListener"]

_LOGGER = logging.getLogger(__name__)

ReportListener = Callable[[Report], Awaitable[None] | None]
OutboxSink = Callable[[Report], list[tuple[str, bytes, bool]]]
AcceptedSink = Callable[[Accepted], list[tuple[str, bytes, bool]]]
QueueFn = Callable[[AlertRecord, list[Delivery]], None]
"""Hands pending deliveries to their providers (the engine's dispatch)."""
FinalHook = Callable[[AlertRecord, Delivery], Iterable[Decision]]
"""Decides what follows a delivery's final state (escalation: SMS fallback, next step); its
decisions are applied one by one as they come, so each sees the ones before it."""
EventRow = tuple[str, str | None, datetime, str, str | None, str | None, str | None, str | None]

RECENT_REPORTS = 1000


def _no_queue(record: AlertRecord, deliveries: list[Delivery]) -> None:
    raise RuntimeError("the ledger has no dispatch to queue deliveries with")


def _nothing_follows(record: AlertRecord, delivery: Delivery) -> Iterable[Decision]:
    return ()


class Ledger:
    """Open alerts in memory, written through to the store one unit of work at a time."""

    def __init__(self, store: Store, clock: Clock, *, queue: QueueFn = _no_queue,
                 on_final: FinalHook = _nothing_follows) -> None:
        self.store = store
        self.clock = clock
        self.queue = queue
        self.on_final = on_final
        self._open: dict[str, AlertRecord] = {}
        self._recent: OrderedDict[str, Report] = OrderedDict()
        self._events: list[EventRow] = []
        self._ops: list[Intent] = []  # counters and timers, written with the next commit
        self._listeners: list[ReportListener] = []
        self._sinks: list[OutboxSink] = []
        self._accepted_sinks: list[AcceptedSink] = []
        self._final_waiters: dict[str, list[Callable[[Report], None]]] = {}

    # -- reading ---------------------------------------------------------------------------

    def record(self, alert_id: str) -> AlertRecord | None:
        """The open record of ``alert_id``."""
        return self._open.get(alert_id)

    def open_ids(self) -> list[str]:
        """The ids of the alerts not final yet."""
        return list(self._open)

    def recent(self, alert_id: str) -> Report | None:
        """The final report of a recently finished alert, if still remembered."""
        return self._recent.get(alert_id)

    async def load(self, alert_id: str) -> AlertRecord:
        """The open record, else the stored alert (NotFoundError if unknown)."""
        record = self._open.get(alert_id)
        if record is not None:
            return record
        loaded = await self.store.load_alert(alert_id)
        if loaded is None:
            raise NotFoundError(f"unknown alert {alert_id!r}")
        return AlertRecord.from_store(*loaded)

    def adopt(self, record: AlertRecord) -> None:
        """Hold ``record`` as open (resumed after a restart, or loaded to change it)."""
        self._open.setdefault(record.alert.id, record)

    # -- listeners -------------------------------------------------------------------------

    def subscribe(self, listener: ReportListener) -> Callable[[], None]:
        """Call ``listener`` with every report; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def add_outbox_sink(self, sink: OutboxSink) -> None:
        """Have ``sink`` turn every report into outbox messages committed with its change."""
        self._sinks.append(sink)

    def add_accepted_sink(self, sink: AcceptedSink) -> None:
        """Have ``sink`` turn a newly accepted alert into outbox messages, committed with it."""
        self._accepted_sinks.append(sink)

    def when_final(self, alert_id: str, callback: Callable[[Report], None]) -> None:
        """Call ``callback`` with the alert's final report once it is emitted."""
        self._final_waiters.setdefault(alert_id, []).append(callback)

    # -- applying decisions in memory ------------------------------------------------------

    def apply(self, record: AlertRecord | None, decisions: Iterable[Decision]) -> bool:
        """Apply ``decisions`` to ``record`` in memory; True if a delivery's state changed.
        Counters and timers need no record; they are written with the next commit."""
        changed = False
        for decision in decisions:
            if isinstance(decision, CountSend):
                self._ops.append(intents.counter_add(decision.key, 1, decision.start))
            elif isinstance(decision, SetTimer):
                self._ops.append(intents.set_timer(decision.key, decision.due,
                                                    dict(decision.data)))
            elif isinstance(decision, DropTimer):
                self._ops.append(intents.delete_timer(decision.key))
            elif record is None:
                raise ValueError(f"{decision!r} needs the alert it applies to")
            else:
                changed |= self._apply_to(record, decision)
        return changed

    def _apply_to(self, record: AlertRecord, decision: Decision) -> bool:
        if isinstance(decision, Advance):
            return self._advance(record, decision)
        if isinstance(decision, SetPhase):
            self._set_phase(record, decision.delivery_id, decision.phase, decision.submission_id)
        elif isinstance(decision, Reroute):
            delivery = record.deliveries[decision.delivery_id]
            record.deliveries[delivery.id] = dataclasses.replace(
                delivery, provider=decision.provider, updated_at=decision.at,
                details={**delivery.details, "failover_from": delivery.provider,
                         "failover_reason": decision.reason})
            self._set_phase(record, delivery.id, Phase.QUEUED, None)
        elif isinstance(decision, Annotate):
            delivery = record.deliveries[decision.delivery_id]
            record.deliveries[delivery.id] = dataclasses.replace(
                delivery, details=dict(decision.details))
        elif isinstance(decision, AddDelivery):
            record.deliveries[decision.delivery.id] = decision.delivery
            record.phases[decision.delivery.id] = (Phase.QUEUED, None)
        elif isinstance(decision, Queue):
            self.queue(record, [record.deliveries[i] for i in decision.delivery_ids])
        elif isinstance(decision, SetEscalation):
            record.status = dataclasses.replace(record.status, escalation=decision.progress)
        elif isinstance(decision, EndAlert):
            self._end(record, decision)
        return False

    def _advance(self, record: AlertRecord, decision: Advance) -> bool:
        """Move a delivery; False (and nothing changes) if its table forbids the move."""
        delivery = record.deliveries[decision.delivery_id]
        state = decision.state
        if not can_transition(delivery.state, state):
            _LOGGER.debug("ignoring %s -> %s for %s", delivery.state, state, delivery.id)
            return False
        updated = delivery.advance(state, decision.at, **decision.changes)
        record.deliveries[delivery.id] = updated
        current, submission_id = record.phases.get(delivery.id, (Phase.QUEUED, None))
        self._set_phase(record, delivery.id, phase_after(current, state), submission_id)
        if state is not delivery.state:
            self._events.append((record.alert.id, delivery.id, decision.at, "state",
                                 delivery.state.value, state.value, updated.provider_status,
                                 updated.reason))
            if state.final:
                for follow in self.on_final(record, updated):
                    self.apply(record, (follow,))
        return True

    def _set_phase(self, record: AlertRecord, delivery_id: str, phase: Phase,
                   submission_id: str | None) -> None:
        check_phase_transition(record.phase(delivery_id), phase, what=f"delivery {delivery_id}")
        record.phases[delivery_id] = (phase, submission_id)

    def _end(self, record: AlertRecord, decision: EndAlert) -> None:
        status = record.status
        if decision.kind == "ack":
            status = dataclasses.replace(status, acknowledged=decision.acknowledgement)
        elif decision.kind == "cancel":
            status = dataclasses.replace(status, cancelled=True)
        else:
            status = dataclasses.replace(status, resolved=True)
        record.status = status
        self._events.append((record.alert.id, None, decision.at, decision.kind, None, None, None,
                             decision.detail))

    def release_hold(self, record: AlertRecord) -> None:
        """The alert's ``not_before`` has passed: it no longer holds its deliveries."""
        record.alert = dataclasses.replace(record.alert, not_before=None)

    # -- units of work ---------------------------------------------------------------------

    async def open_new(self, record: AlertRecord, keys: list[str]) -> Accepted:
        """Write a newly accepted alert (alert, deliveries, the screening's counters and the
        escalation's timer, outbox messages) in one transaction, then emit it."""
        alert, now = record.alert, self.clock.now()
        report = record.report(now)
        accepted = Accepted(alert.id, len(record.deliveries), False, report)
        ops = [intents.insert_alert(alert, record.status, report.state.value, False, keys),
               intents.save_deliveries([(d, Phase.QUEUED, None)
                                         for d in record.deliveries.values()]),
               intents.events([(alert.id, None, now, "accepted", None, None, None,
                                 alert.source)]),
               *self._take_pending(), *self._outbox_ops(report, accepted)]
        await self.store.commit(ops)
        record.mark_saved()
        record.saved_row = (record.status, report.state.value, False)
        self._open[alert.id] = record
        await self.emit(record)
        return accepted

    async def save(self, alert_ids: Iterable[str], *, publish: bool = True,
                   extra: Iterable[Intent] = ()) -> None:
        """Write what changed of the given open alerts (deliveries, alert row, new events,
        counters, timers) in one group commit, with their reports' outbox messages unless
        ``publish`` is False."""
        ops: list[Intent] = list(extra)
        now = self.clock.now()
        saved: list[AlertRecord] = []
        for alert_id in set(alert_ids):
            record = self._open.get(alert_id)
            if record is None:
                continue
            report = record.report(now)
            rows = record.unsaved()
            if rows:
                ops.append(intents.save_deliveries(rows))
            row = (record.status, report.state.value, report.final)
            if record.saved_row is None or record.saved_row[0] is not row[0] or \
                    record.saved_row[1:] != row[1:]:
                if record.saved_row is not None:
                    check_alert_transition(AlertState(record.saved_row[1]), report.state,
                                           what=f"alert {alert_id}")
                ops.append(intents.update_alert(alert_id, record.status, report.state.value,
                                                 report.final, now))
                record.saved_row = row
            if publish:
                ops.extend(self._outbox_ops(report))
            saved.append(record)
        ops.extend(self._take_pending())
        await self.store.commit(ops)
        for record in saved:
            record.mark_saved()

    async def settle(self, alert_ids: Iterable[str], *, extra: Iterable[Intent] = ()) -> None:
        """:meth:`save` the alerts, then emit their reports."""
        ids = set(alert_ids)
        await self.save(ids, extra=extra)
        await self.emit_many(ids)

    async def save_phases(self, entries: list[tuple[AlertRecord, Delivery]], phase: Phase) -> None:
        """Only the outbox phase of ``entries`` changes: a cheap update, no delivery JSON, no
        report (marking a batch in flight, or queued again after a provider refused it)."""
        for record, delivery in entries:
            self._set_phase(record, delivery.id, phase, None)
        await self.store.commit([intents.set_phase([d.id for _, d in entries], phase)])
        for record, delivery in entries:
            record.saved[delivery.id] = (delivery, (phase, None))

    def _take_pending(self) -> list[Intent]:
        ops, self._ops = self._ops, []
        events, self._events = self._events, []
        return ops + ([intents.events(events)] if events else [])

    def _outbox_ops(self, report: Report, accepted: Accepted | None = None) -> list[Intent]:
        messages = [m for sink in self._accepted_sinks for m in sink(accepted)] if accepted else []
        messages += [m for sink in self._sinks for m in sink(report)]
        return [intents.outbox_add(messages, report.updated_at)] if messages else []

    # -- emitting --------------------------------------------------------------------------

    async def emit_many(self, alert_ids: Iterable[str]) -> None:
        """Emit the reports of those of ``alert_ids`` that are open."""
        for alert_id in set(alert_ids):
            record = self._open.get(alert_id)
            if record is not None:
                await self.emit(record)

    async def emit(self, record: AlertRecord) -> None:
        """Tell the listeners; a final alert leaves the open set (its waiters are woken)."""
        report = record.report(self.clock.now())
        for listener in list(self._listeners):
            try:
                result = listener(report)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                _LOGGER.exception("report listener failed for %s", record.alert.id)
        if report.final:
            self._open.pop(record.alert.id, None)
            self._recent[record.alert.id] = report
            while len(self._recent) > RECENT_REPORTS:
                self._recent.popitem(last=False)
            for waiter in self._final_waiters.pop(record.alert.id, []):
                waiter(report)

