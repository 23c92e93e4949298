"""The engine: accept → validate → persist → batch → submit → track → report; ack, cancel.

The :class:`Engine` is a façade over its parts: acceptance (the front door), sending (dispatch,
failover), tracking, escalation, policy, recovery, and the ledger that alone writes every change
they decide.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Literal, cast

from alertline.clock import Clock, SystemClock
from alertline.config.sections import Config
from alertline.engine.acceptance import Acceptance
from alertline.engine.decisions import Advance, Decision, EndAlert, Queue
from alertline.engine.escalation import EscalationRunner
from alertline.engine.ledger import AcceptedSink, Ledger, OutboxSink, ReportListener
from alertline.engine.policy import Policy
from alertline.engine.recovery import Recovery
from alertline.engine.scheduler import ApsScheduler, Scheduler
from alertline.engine.sending import Sender
from alertline.engine.tracking import Tracker, status_decisions
from alertline.errors import ProviderError
from alertline.http.web.links import LinkedTexts
from alertline.intake.request import AlertRequest
from alertline.model import Acknowledgement, Alert, Delivery, DeliveryState, Report
from alertline.providers.base import Provider, ProviderContext, StatusUpdate
from alertline.providers.registry import create_provider
from alertline.records import Accepted, AlertRecord
from alertline.redact import Redactor
from alertline.states import Phase
from alertline.store.protocol import Store
from alertline.store.stored import Command, OpenWork

__all__ = ["Accepted", "AcceptedSink", "AlertRecord", "Engine", "OutboxSink", "ReportListener"]

EndKind = Literal["ack", "cancel", "resolve"]
_OUTCOMES: dict[EndKind, str] = {"ack": "acknowledged", "cancel": "cancelled",
                                 "resolve": "resolved"}
"""What an alert's escalation ends with when it is acknowledged, cancelled or resolved."""

_LOGGER = logging.getLogger(__name__)

Forward = Callable[[str, str, dict[str, object]], Awaitable[Report | None]]
"""Hands an ack, cancel, resolve or pushed status for an open alert that another cluster member
owns to that member: ``(alert_id, kind, data)``, the alert's report once it was carried out;
None when the alert is final (the engine then records it itself)."""


class Engine:
    """One alertline engine: the daemon and the Home Assistant integration each run one."""

    def __init__(self, config: Config, store: Store, *, clock: Clock | None = None,
                 scheduler: Scheduler | None = None, providers: dict[str, Provider] | None = None,
                 context: ProviderContext | None = None, max_in_flight: int = 4) -> None:
        self.config = config
        self.store = store
        self.clock = clock or SystemClock()
        self.scheduler = scheduler or ApsScheduler()
        # one redactor for the adapters' errors and the engine's reasons: the context's, which
        # the adapters fill with their options' secrets as they are built
        self.context = context or ProviderContext(clock=self.clock, redactor=Redactor())
        self.redactor = self.context.redactor
        for secret in config.secrets:
            self.redactor.add(secret)
        self.providers = providers if providers is not None else {
            name: create_provider(name, p.type, p.options, self.context)
            for name, p in config.providers.items()}
        self.metrics: dict[str, float] = {"alerts_received": 0, "alerts_rejected": 0,
                                          "alerts_duplicate": 0, "provider_requests": 0,
                                          "provider_errors": 0, "provider_seconds": 0.0}
        self._provider_error_listeners: list[Callable[[ProviderError], None]] = []
        self.ledger = Ledger(store, self.clock, on_final=self._delivery_ended)
        self.policy = Policy(config.limits or {}, config.contacts, clock=self.clock,
                             providers=self.providers, counter=store.counter)
        self.escalations = EscalationRunner(config, self.providers, self.clock, self.scheduler,
                                            due=self._escalation_due, screen=self.policy.screen)
        self.tracker = Tracker(self.ledger, self.providers, clock=self.clock,
                               scheduler=self.scheduler, redactor=self.redactor,
                               deadline=self.deadline_for, on_error=self.provider_failed)
        self._sender = Sender(self.ledger, self.providers, config=config, clock=self.clock,
                              scheduler=self.scheduler, redactor=self.redactor,
                              policy=self.policy, escalations=self.escalations,
                              tracker=self.tracker, metrics=self.metrics,
                              on_error=self.provider_failed, deadline=self.deadline_for,
                              max_in_flight=max_in_flight)
        self.ledger.queue = self._sender.queue
        self._acceptance = Acceptance(self.ledger, self.providers, config=config,
                                      clock=self.clock, policy=self.policy,
                                      escalations=self.escalations, metrics=self.metrics,
                                      report=self.report)
        self._recovery = Recovery(self.ledger, self.providers, clock=self.clock,
                                  scheduler=self.scheduler, redactor=self.redactor,
                                  policy=self.policy, escalations=self.escalations,
                                  tracker=self.tracker)
        self._started = False
        self.forward: Forward | None = None
        """Set by a host in a cluster (:mod:`alertline.cluster`): where acks, cancels,
        resolves and pushed statuses for open alerts this engine does not hold go."""

    @property
    def linked_texts(self) -> LinkedTexts | None:
        """SMS acknowledgement links (the web page), when a host set them."""
        return self._sender.linked_texts

    @linked_texts.setter
    def linked_texts(self, value: LinkedTexts | None) -> None:
        self._sender.linked_texts = value

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, *, before_resume: Callable[[], Awaitable[None]] | None = None) -> None:
        """Open the store, resume unfinished work, start timers; ``before_resume`` runs once
        the store is open (a cluster member joins then, so only its own alerts resume)."""
        await self.store.open()
        if before_resume is not None:
            await before_resume()
        self.scheduler.start()
        self._started = True
        await self._recovery.resume()

    async def stop(self, *, drain_timeout: float = 10.0) -> None:
        """Finish in-flight submissions (bounded), stop timers, close providers and the store."""
        try:
            await asyncio.wait_for(self.drain(), drain_timeout)
        except TimeoutError:
            _LOGGER.warning("stopping with submissions still in flight; they resume on restart")
        self.scheduler.shutdown()
        for dispatcher in self._sender.dispatchers.values():
            dispatcher.close()
        for provider in self.providers.values():
            await provider.aclose()
        await self.store.close()
        self._started = False

    async def drain(self) -> None:
        """Wait until every queued delivery has been handed to its provider and recorded."""
        # a failover moves work from one dispatcher to another: wait until all are idle at once
        dispatchers = self._sender.dispatchers.values()
        while not self._sender.idle:
            await asyncio.gather(*(d.drain() for d in dispatchers))

    def add_outbox_sink(self, sink: OutboxSink) -> None:
        """Have ``sink`` turn every report into outbox messages ``(topic, payload, retain)``,
        committed in the same transaction as the state change they describe (nothing is lost
        between a change and its publication)."""
        self.ledger.add_outbox_sink(sink)

    def add_accepted_sink(self, sink: AcceptedSink) -> None:
        """Have ``sink`` turn a newly accepted alert into outbox messages, committed with it."""
        self.ledger.add_accepted_sink(sink)

    def subscribe(self, listener: ReportListener) -> Callable[[], None]:
        """Call ``listener`` with every report; returns a function that unsubscribes."""
        return self.ledger.subscribe(listener)

    def on_provider_error(self, listener: Callable[[ProviderError], None]) -> Callable[[], None]:
        """Call ``listener`` with every provider error of a submission or a status poll (hosts
        react to ``AuthError``, e.g. Home Assistant starts re-authentication)."""
        self._provider_error_listeners.append(listener)
        return lambda: (self._provider_error_listeners.remove(listener)
                        if listener in self._provider_error_listeners else None)

    def provider_failed(self, error: BaseException | None) -> None:
        """Tell the provider-error listeners about ``error`` (only a :class:`ProviderError`)."""
        if not isinstance(error, ProviderError):
            return
        for listener in list(self._provider_error_listeners):
            try:
                listener(error)
            except Exception:
                _LOGGER.exception("provider error listener failed")

    # -- accepting -------------------------------------------------------------------------

    async def accept(self, request: AlertRequest, *, source: str | None = None,
                     keys: Iterable[str] = ()) -> Accepted:
        """Validate, persist and queue an alert; a known id or key returns the existing alert."""
        return await self._acceptance.accept(request, source, keys)

    # -- status updates --------------------------------------------------------------------

    def apply_updates(self, record: AlertRecord, updates: Iterable[StatusUpdate]) -> bool:
        """Apply provider status updates to ``record`` in memory; True if anything changed."""
        return self.ledger.apply(record, status_decisions(record.deliveries, updates,
                                                          self.clock.now()))

    async def apply_push(self, provider: str, updates: list[StatusUpdate]) -> int:
        """Pushed status (e.g. Fortytwo postbacks): match by provider ids; returns matches."""
        matched = 0
        touched: set[str] = set()
        for update in updates:
            for alert_id in await self.store.find_deliveries(
                    provider, update.provider_ref, update.provider_message_id):
                record = self.ledger.record(alert_id)
                if record is None:
                    matched += 1  # a late duplicate for a finished alert: harmless, or in a
                    if self.forward is not None:  # cluster one for another member's alert
                        await self.forward(alert_id, "push", {"provider": provider,
                                                              "update": update.to_json()})
                    continue
                for delivery in list(record.deliveries.values()):
                    if delivery.provider != provider or not _matches(delivery, update):
                        continue
                    matched += 1
                    resolved = dataclasses.replace(update, delivery_id=delivery.id)
                    if self.apply_updates(record, [resolved]):
                        touched.add(alert_id)
                    if self.escalations.keypad(record, delivery, update):
                        await self.ack(record.alert.id, via="keypad",
                                       by=delivery.recipient.contact or delivery.recipient.number)
        await self.ledger.settle(touched)
        return matched

    # -- ack, cancel, resolve --------------------------------------------------------------

    async def ack(self, alert_id: str, *, by: str | None = None, via: str = "api") -> Report:
        """Acknowledge: stop escalation; record who and how."""
        if (forwarded := await self._elsewhere(alert_id, "ack", {"by": by, "via": via})):
            return forwarded
        record = await self.ledger.load(alert_id)
        self._apply_end(record, "ack", by, via)
        return await self._commit_and_emit(record)

    async def cancel(self, alert_id: str, *, by: str | None = None) -> Report:
        """Cancel what has not been delivered yet."""
        if (forwarded := await self._elsewhere(alert_id, "cancel", {"by": by})):
            return forwarded
        record = await self.ledger.load(alert_id)
        self._apply_end(record, "cancel", by)
        return await self._commit_and_emit(record)

    async def resolve(self, alert_id: str, *, by: str | None = None) -> Report:
        """The alert's cause is gone: stop escalation and queued sends."""
        if (forwarded := await self._elsewhere(alert_id, "resolve", {"by": by})):
            return forwarded
        record = await self.ledger.load(alert_id)
        self._apply_end(record, "resolve", by)
        return await self._commit_and_emit(record)

    async def _elsewhere(self, alert_id: str, kind: str, data: dict[str, object]) -> Report | None:
        """In a cluster, hand an alert this engine does not hold to its owner."""
        if self.forward is None or self.ledger.record(alert_id) is not None:
            return None
        return await self.forward(alert_id, kind, data)

    def _apply_end(self, record: AlertRecord, kind: EndKind, by: str | None,
                   via: str = "api") -> None:
        """Record an ``ack`` (once), ``cancel`` or ``resolve`` of ``record``: the fact, the
        end of its escalation, and what is still queued cancelled."""
        now = self.clock.now()
        if kind == "ack":
            if record.status.acknowledged is not None:
                return
            fact = EndAlert("ack", now, f"{via}:{by or ''}",
                            Acknowledgement(by=by, via=via, at=now))
        else:
            fact = EndAlert(kind, now, by)
        outcome = _OUTCOMES[kind]
        self.ledger.apply(record, [fact, *self.escalations.stop(record, outcome),
                                   *cancel_queued(record, outcome, now)])

    async def _commit_and_emit(self, record: AlertRecord) -> Report:
        self.ledger.adopt(record)
        await self.ledger.save([record.alert.id])
        await self.ledger.emit(record)
        return record.report(self.clock.now())

    # -- a cluster -------------------------------------------------------------------------

    async def take_over(self, work: OpenWork, ends: Sequence[Command] = ()) -> None:
        """Resume alerts this engine just claimed from a cluster member that stopped
        (``ClusterStore.load_work_of``): requeue what was not sent, settle what was in
        flight, restart their timers and polls. ``ends`` (the acks, cancels and resolves
        sent meanwhile) are recorded first, so a step that fell due while
        nobody owned the alert does not go out after its ack."""
        def prelude() -> set[str]:
            ended = set()
            for end in ends:
                record = self.ledger.record(end.alert_id)
                if record is not None and end.kind in ("ack", "cancel", "resolve"):
                    self._apply_end(record, cast(EndKind, end.kind), end.by, end.via)
                    ended.add(end.alert_id)
            return ended
        await self._recovery.take_over(work, only=set(work.alerts), prelude=prelude)

    # -- escalation ------------------------------------------------------------------------

    def _delivery_ended(self, record: AlertRecord, delivery: Delivery) -> Iterator[Decision]:
        """What follows a delivery's final state (the ledger applies it as it comes)."""
        return self.escalations.delivery_ended(record, delivery)

    async def _escalation_due(self, alert_id: str, position: int) -> None:
        """A step's timer fired: apply what the escalation decides, write it, send."""
        record = self.ledger.record(alert_id)
        plan = self.escalations.step_due(record, alert_id, position)
        if plan is None:
            return
        self.ledger.apply(record, plan.decisions)
        if record is None or plan.stale:
            await self.ledger.save([])  # only the stale timer goes
            return
        await self.ledger.save([alert_id])
        await self.ledger.emit(record)
        if plan.created:
            self.ledger.apply(record, [Queue(tuple(d.id for d in plan.created))])

    # -- reports ---------------------------------------------------------------------------

    async def report(self, alert_id: str) -> Report:
        """The current report of an alert (NotFoundError if unknown)."""
        record = self.ledger.record(alert_id)
        if record is not None:
            return record.report(self.clock.now())
        recent = self.ledger.recent(alert_id)
        if recent is not None:
            return recent
        return (await self.ledger.load(alert_id)).report(self.clock.now())

    async def wait_final(self, alert_id: str,
                         timeout: float | None = None) -> Report:  # noqa: ASYNC109 - public API
        """Wait until the alert's report is final."""
        report = await self.report(alert_id)
        if report.final:
            return report
        future: asyncio.Future[Report] = asyncio.get_running_loop().create_future()
        self.ledger.when_final(alert_id, lambda final: None if future.done()
                               else future.set_result(final))
        return await asyncio.wait_for(future, timeout)

    @property
    def open_alerts(self) -> int:
        """Alerts not final yet."""
        return len(self.ledger.open_ids())

    def queue_depth(self) -> int:
        """Deliveries waiting for a provider request."""
        return self._sender.queued()

    def record(self, alert_id: str) -> AlertRecord | None:
        """The open record of ``alert_id``."""
        return self.ledger.record(alert_id)

    def deadline_for(self, provider: Provider, alert: Alert, submitted_at: datetime) -> datetime:
        """When tracking of a delivery gives up."""
        seconds = self.config.tracking_deadline() or provider.capabilities.tracking_deadline
        deadline = submitted_at + timedelta(seconds=seconds)
        if alert.expires is not None:
            deadline = min(deadline, max(alert.expires, submitted_at))
        return deadline


def cancel_queued(record: AlertRecord, reason: str, now: datetime) -> list[Decision]:
    """Cancel the deliveries of ``record`` still waiting in the queue (not those in flight)."""
    return [Advance(d.id, DeliveryState.CANCELLED, now, {"reason": reason})
            for d in record.deliveries.values()
            if d.state is DeliveryState.PENDING and record.phase(d.id) is Phase.QUEUED]


def _matches(delivery: Delivery, update: StatusUpdate) -> bool:
    if update.provider_message_id and delivery.provider_message_id:
        return delivery.provider_message_id == update.provider_message_id
    if update.provider_ref and delivery.provider_ref != update.provider_ref:
        return False
    return update.number is None or delivery.recipient.number.lstrip("+") == \
        update.number.lstrip("+")
