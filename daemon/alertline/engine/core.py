"""The engine: accept → validate → persist → batch → submit → track → report; ack, cancel."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from alertline.clock import Clock, SystemClock
from alertline.config.sections import Config
from alertline.engine.dispatch import BatchKey, Dispatcher
from alertline.engine.escalation import EscalationRunner
from alertline.engine.failover import next_provider, submission_failed
from alertline.engine.policy import Policy
from alertline.engine.recovery import resume_open_work
from alertline.engine.scheduler import ApsScheduler, Scheduler
from alertline.engine.tracking import Tracker
from alertline.errors import NotFoundError, ProviderError, RateLimitedError, ValidationError
from alertline.http.web.links import LinkedTexts
from alertline.intake.expand import build_alert, personalise, provider_for
from alertline.intake.request import AlertRequest
from alertline.model import (
    Acknowledgement,
    Alert,
    AlertStatus,
    Channel,
    Delivery,
    DeliveryState,
    Report,
    can_transition,
)
from alertline.providers.base import (
    Batch,
    BatchItem,
    Provider,
    ProviderContext,
    StatusUpdate,
    Submission,
)
from alertline.providers.registry import create_provider
from alertline.records import Accepted, AlertRecord
from alertline.redact import Redactor
from alertline.store.sqlite import Op, Phase, Store

__all__ = ["Accepted", "AlertRecord", "Engine"]

_LOGGER = logging.getLogger(__name__)

ReportListener = Callable[[Report], Awaitable[None] | None]
OutboxSink = Callable[[Report], list[tuple[str, bytes, bool]]]
AcceptedSink = Callable[["Accepted"], list[tuple[str, bytes, bool]]]


class Engine:
    """One alertline engine: the daemon and the Home Assistant integration each run one."""

    def __init__(self, config: Config, store: Store, *, clock: Clock | None = None,
                 scheduler: Scheduler | None = None, providers: dict[str, Provider] | None = None,
                 context: ProviderContext | None = None, max_in_flight: int = 4) -> None:
        self.config = config
        self.store = store
        self.clock = clock or SystemClock()
        self.scheduler = scheduler or ApsScheduler()
        self.redactor = Redactor(config.secrets)
        self.context = context or ProviderContext(clock=self.clock, redactor=self.redactor)
        for secret in config.secrets:
            self.context.redactor.add(secret)
        self.providers = providers if providers is not None else {
            name: create_provider(name, p.type, p.options, self.context)
            for name, p in config.providers.items()}
        self._dispatchers = {
            name: Dispatcher(provider, self._prepare_batch, self._batch_finished,
                             max_in_flight=max_in_flight, throttled=self._batch_throttled,
                             clock=self.clock)
            for name, provider in self.providers.items()}
        self.tracker = Tracker(self)
        self.policy = Policy(self)
        self.escalations = EscalationRunner(self)
        self.linked_texts: LinkedTexts | None = None  # SMS acknowledgement links (web page)
        self.pending_ops: list[Op] = []  # counters and timers, written with the next commit
        self._open: dict[str, AlertRecord] = {}
        self._recent: OrderedDict[str, Report] = OrderedDict()
        self._accepting: dict[str, asyncio.Future[Accepted]] = {}
        self._listeners: list[ReportListener] = []
        self._sinks: list[OutboxSink] = []
        self._provider_error_listeners: list[Callable[[ProviderError], None]] = []
        self._accepted_sinks: list[AcceptedSink] = []
        self._events: list[tuple[str, str | None, datetime, str, str | None, str | None,
                                 str | None, str | None]] = []
        self._final_waiters: dict[str, list[asyncio.Future[Report]]] = {}
        self.metrics: dict[str, float] = {"alerts_received": 0, "alerts_rejected": 0,
                                          "alerts_duplicate": 0, "provider_requests": 0,
                                          "provider_errors": 0, "provider_seconds": 0.0}
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, resume unfinished work, start timers."""
        await self.store.open()
        self.scheduler.start()
        self._started = True
        await self._resume()

    async def stop(self, *, drain_timeout: float = 10.0) -> None:
        """Finish in-flight submissions (bounded), stop timers, close providers and the store."""
        try:
            await asyncio.wait_for(self.drain(), drain_timeout)
        except TimeoutError:
            _LOGGER.warning("stopping with submissions still in flight; they resume on restart")
        self.scheduler.shutdown()
        for dispatcher in self._dispatchers.values():
            dispatcher.close()
        for provider in self.providers.values():
            await provider.aclose()
        await self.store.close()
        self._started = False

    async def drain(self) -> None:
        """Wait until every queued delivery has been handed to its provider and recorded."""
        # a failover moves work from one dispatcher to another: wait until all are idle at once
        while not all(d.idle for d in self._dispatchers.values()):
            await asyncio.gather(*(d.drain() for d in self._dispatchers.values()))

    def add_outbox_sink(self, sink: OutboxSink) -> None:
        """Have ``sink`` turn every report into outbox messages ``(topic, payload, retain)``,
        committed in the same transaction as the state change they describe (nothing is lost
        between a change and its publication)."""
        self._sinks.append(sink)

    def add_accepted_sink(self, sink: AcceptedSink) -> None:
        """Have ``sink`` turn a newly accepted alert into outbox messages, committed with it."""
        self._accepted_sinks.append(sink)

    def _outbox_ops(self, report: Report, accepted: Accepted | None = None) -> list[Op]:
        messages = [m for sink in self._accepted_sinks for m in sink(accepted)] if accepted else []
        messages += [m for sink in self._sinks for m in sink(report)]
        return [Store.op_outbox_add(messages, report.updated_at)] if messages else []

    def subscribe(self, listener: ReportListener) -> Callable[[], None]:
        """Call ``listener`` with every report; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

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
        self.metrics["alerts_received"] += 1
        key_list = list(keys)
        # the id and keys are claimed before the first await: a concurrent request with any of
        # them waits for this one instead of racing it into the store
        claims = list(dict.fromkeys(([request.id] if request.id else []) + key_list))
        pending = next((self._accepting[c] for c in claims if c in self._accepting), None)
        if pending is not None:
            self.metrics["alerts_duplicate"] += 1
            first = await asyncio.shield(pending)
            return dataclasses.replace(first, duplicate=True)
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        for claim in claims:
            self._accepting[claim] = future
        try:
            accepted = await self._accept_new(request, source, key_list)
            future.set_result(accepted)
            return accepted
        except BaseException as err:
            future.set_exception(err)
            future.exception()  # retrieved: concurrent duplicates re-raise it themselves
            raise
        finally:
            for claim in claims:
                if self._accepting.get(claim) is future:
                    del self._accepting[claim]

    async def _accept_new(self, request: AlertRequest, source: str | None,
                          keys: list[str]) -> Accepted:
        known = await self._known(request.id, keys)
        if known is not None:
            self.metrics["alerts_duplicate"] += 1
            return known
        try:
            alert = build_alert(request, self.config, self.providers, now=self.clock.now(),
                                source=source)
        except ValidationError:
            self.metrics["alerts_rejected"] += 1
            raise
        similar = await self._known(self.policy.duplicate_of(alert), [])
        if similar is not None:
            self.metrics["alerts_duplicate"] += 1
            return similar
        return await self._persist_new(alert, keys)

    async def _known(self, alert_id: str | None, keys: list[str]) -> Accepted | None:
        for key in ([alert_id] if alert_id else []) + keys:
            existing = key if key in self._open else await self.store.alert_for_key(key)
            if existing is not None:
                report = await self.report(existing)
                return Accepted(existing, len(report.deliveries), True, report)
        return None

    async def _persist_new(self, alert: Alert, keys: list[str]) -> Accepted:
        now = self.clock.now()
        record = AlertRecord(alert=alert, status=AlertStatus(), deliveries={})
        for channel in alert.channels:
            provider = provider_for(alert, channel, self.config, self.providers)
            for recipient in alert.recipients:
                delivery_id = f"{alert.id}-{len(record.deliveries) + 1}"
                record.deliveries[delivery_id] = Delivery(
                    id=delivery_id, alert_id=alert.id, recipient=recipient, channel=channel,
                    provider=provider, state=DeliveryState.PENDING, created_at=now,
                    updated_at=now)
                record.phases[delivery_id] = (Phase.QUEUED, None)
        self.escalations.begin(record)
        self.policy.admit(record)
        report = record.report(now)
        accepted = Accepted(alert.id, len(record.deliveries), False, report)
        ops = [Store.op_insert_alert(alert, record.status, report.state.value, False, keys),
               Store.op_save_deliveries([(d, Phase.QUEUED, None)
                                         for d in record.deliveries.values()]),
               Store.op_events([(alert.id, None, now, "accepted", None, None, None, alert.source)]),
               *self._take_pending_ops(), *self._outbox_ops(report, accepted)]
        await self.store.commit(ops)
        record.mark_saved()
        record.saved_row = (record.status, report.state.value, False)
        self._open[alert.id] = record
        await self._emit(record)
        self._queue(record, list(record.deliveries.values()))
        return accepted

    # -- submitting ------------------------------------------------------------------------

    def _queue(self, record: AlertRecord, deliveries: list[Delivery]) -> None:
        """Hand pending deliveries to their providers' dispatchers (or hold until not_before)."""
        alert = record.alert
        now = self.clock.now()
        if alert.not_before is not None and alert.not_before > now:
            self.scheduler.call_at(f"hold:{alert.id}", alert.not_before,
                                   lambda: self._release(alert.id))
            return
        groups: dict[tuple[str, Channel, str, tuple[str, ...]], list[BatchItem]] = {}
        for delivery in deliveries:
            if delivery.state is not DeliveryState.PENDING:
                continue
            blackout = self.policy.quiet_plan(record, delivery)
            if blackout is None:
                continue  # held for quiet hours; the policy queues it when they end
            template = self.escalations.text_for(alert, delivery)
            values = delivery.recipient.personalization
            if self.linked_texts is not None:
                policy = self.escalations.policy_of(alert)
                template, values = self.linked_texts.apply(
                    alert, delivery, template, values, policy=policy.name if policy else None,
                    now=now)
            item = BatchItem(
                delivery_id=delivery.id, alert_id=alert.id, number=delivery.recipient.number,
                text=personalise(template, values, delivery.recipient.number),
                template=template, personalization=dict(values),
                locale=delivery.recipient.locale or alert.locale,
                contact=delivery.recipient.contact)
            groups.setdefault((delivery.provider, delivery.channel,
                               self._content_key(delivery.provider, item), blackout),
                              []).append(item)
        for (provider, channel, content, blackout), items in groups.items():
            self._dispatchers[provider].enqueue(
                BatchKey.for_alert(alert, channel, blackout, content=content), items)

    def _content_key(self, provider: str, item: BatchItem) -> str:
        """What must be equal for items to share one request of ``provider``."""
        capabilities = self.providers[provider].capabilities
        if not capabilities.shared_content:
            return ""
        return item.template if capabilities.personalization else item.text

    async def _release(self, alert_id: str) -> None:
        record = self._open.get(alert_id)
        if record is not None:
            record.alert = dataclasses.replace(record.alert, not_before=None)
            self._queue(record, list(record.deliveries.values()))

    async def _prepare_batch(self, batch: Batch) -> Batch | None:
        """Drop items cancelled or expired meanwhile; mark the rest in flight (durably)."""
        now = self.clock.now()
        keep: list[BatchItem] = []
        in_flight: list[tuple[AlertRecord, Delivery]] = []
        expired: set[str] = set()
        for item in batch.items:
            record = self._open.get(item.alert_id)
            delivery = record.deliveries.get(item.delivery_id) if record else None
            if record is None or delivery is None or delivery.state is not DeliveryState.PENDING:
                continue
            if record.alert.expires is not None and record.alert.expires <= now:
                self._set_state(record, delivery, DeliveryState.EXPIRED, now,
                                reason="expired before it could be sent")
                expired.add(record.alert.id)
                continue
            record.phases[delivery.id] = (Phase.IN_FLIGHT, None)
            in_flight.append((record, delivery))
            keep.append(item)
        if expired:
            await self._save(expired)
        if in_flight:
            # only the phase changes: a cheap update, no delivery JSON and no report
            await self.store.commit([Store.op_set_phase([d.id for _, d in in_flight],
                                                        Phase.IN_FLIGHT)])
            for record, delivery in in_flight:
                record.saved[delivery.id] = (delivery, (Phase.IN_FLIGHT, None))
        await self._emit_many(expired)
        return dataclasses.replace(batch, items=tuple(keep)) if keep else None

    async def _batch_finished(self, batch: Batch, submission: Submission | None,
                              error: BaseException | None, seconds: float) -> None:
        """Record a provider request's outcome and start tracking it."""
        self.metrics["provider_requests"] += 1
        self.metrics["provider_seconds"] += seconds
        if submission is None:
            self.metrics["provider_errors"] += 1
            self.provider_failed(error)
            await submission_failed(self, batch, error)
            return
        await self.tracker.submitted(batch, submission)

    async def _batch_throttled(self, batch: Batch, error: BaseException,
                               seconds: float) -> Batch | None:
        """A provider refused ``batch`` for load: the items whose alert may still wait (before
        its expiry and the tracking deadline, counted from the delivery's creation) go back to
        the queue (durably ``queued`` again: nothing was sent); the others fail over to the
        route's next provider, or fail as "rate limited" (:func:`submission_failed`).

        A rate limit says "later", so its items wait; where the route has another provider they
        move on at once if the provider's pause outlasts the deadline (a long Retry-After), and
        so do the items of a 503, which may be an outage rather than a limit."""
        self.metrics["provider_requests"] += 1
        self.metrics["provider_errors"] += 1
        self.metrics["provider_rate_limited"] = self.metrics.get("provider_rate_limited", 0) + 1
        self.metrics["provider_seconds"] += seconds
        self.provider_failed(error)
        now = self.clock.now()
        wait: list[BatchItem] = []
        give_up: list[BatchItem] = []
        for item in batch.items:
            record = self._open.get(item.alert_id)
            delivery = record.deliveries.get(item.delivery_id) if record else None
            if record is None or delivery is None or delivery.state is not DeliveryState.PENDING:
                continue
            owner = self.providers.get(delivery.provider)
            deadline = (self.deadline_for(owner, record.alert, delivery.created_at)
                        if owner is not None else now)
            dispatcher = self._dispatchers.get(delivery.provider)
            resumes = (dispatcher.paused_until if dispatcher else None) or now
            outage = not isinstance(error, RateLimitedError)
            elsewhere = next_provider(self, record.alert, delivery) is not None
            if now >= deadline or (elsewhere and (outage or resumes >= deadline)):
                give_up.append(item)
                continue
            record.phases[delivery.id] = (Phase.QUEUED, None)
            record.saved[delivery.id] = (delivery, (Phase.QUEUED, None))
            wait.append(item)
        if wait:
            await self.store.commit([Store.op_set_phase([i.delivery_id for i in wait],
                                                        Phase.QUEUED)])
        if give_up:
            await submission_failed(self, dataclasses.replace(batch, items=tuple(give_up)), error)
        return dataclasses.replace(batch, items=tuple(wait)) if wait else None

    # -- status updates --------------------------------------------------------------------

    def _set_state(self, record: AlertRecord, delivery: Delivery, state: DeliveryState,
                   at: datetime, **changes: Any) -> bool:
        """Move ``delivery`` to ``state`` in memory; False (and nothing changes) if illegal."""
        if not can_transition(delivery.state, state):
            _LOGGER.debug("ignoring %s -> %s for %s", delivery.state, state, delivery.id)
            return False
        updated = delivery.advance(state, at, **changes)
        record.deliveries[delivery.id] = updated
        phase, submission_id = record.phases.get(delivery.id, (Phase.QUEUED, None))
        if state.final:
            phase = Phase.DONE
        elif state is DeliveryState.SUBMITTED:
            phase = Phase.TRACKING
        record.phases[delivery.id] = (phase, submission_id)
        if state is not delivery.state:
            self._events.append((record.alert.id, delivery.id, at, "state", delivery.state.value,
                                 state.value, updated.provider_status, updated.reason))
            if state.final:
                self.escalations.delivery_ended(record, updated)
        return True

    def apply_updates(self, record: AlertRecord, updates: Iterable[StatusUpdate]) -> bool:
        """Apply provider status updates to ``record`` in memory; True if anything changed."""
        changed = False
        now = self.clock.now()
        for update in updates:
            delivery = record.deliveries.get(update.delivery_id or "")
            if delivery is None or delivery.state.final:
                continue
            if (update.state is delivery.state and update.provider_status ==
                    delivery.provider_status and not update.details):
                continue
            details = {**delivery.details, **update.details}
            changes: dict[str, Any] = {"provider_status": update.provider_status,
                                       "details": details}
            if update.reason is not None:
                changes["reason"] = update.reason
            changed |= self._set_state(record, delivery, update.state, update.at or now, **changes)
        return changed

    async def apply_push(self, provider: str, updates: list[StatusUpdate]) -> int:
        """Pushed status (e.g. Fortytwo postbacks): match by provider ids; returns matches."""
        matched = 0
        touched: set[str] = set()
        for update in updates:
            for alert_id in await self.store.find_deliveries(
                    provider, update.provider_ref, update.provider_message_id):
                record = self._open.get(alert_id)
                if record is None:
                    matched += 1  # a late duplicate for a finished alert: harmless
                    continue
                for delivery in list(record.deliveries.values()):
                    if delivery.provider != provider or not _matches(delivery, update):
                        continue
                    matched += 1
                    resolved = dataclasses.replace(update, delivery_id=delivery.id)
                    if self.apply_updates(record, [resolved]):
                        touched.add(alert_id)
                    await self._on_push_details(record, delivery, update)
        await self._save(touched)
        await self._emit_many(touched)
        return matched

    async def _on_push_details(self, record: AlertRecord, delivery: Delivery,
                               update: StatusUpdate) -> None:
        """Hook for keypad input in pushed status (escalation acks)."""
        await self.escalations.keypad(record, delivery, update)

    # -- ack, cancel, resolve --------------------------------------------------------------

    async def ack(self, alert_id: str, *, by: str | None = None, via: str = "api") -> Report:
        """Acknowledge: stop escalation; record who and how."""
        record = await self._record(alert_id)
        if record.status.acknowledged is None:
            record.status = dataclasses.replace(
                record.status, acknowledged=Acknowledgement(by=by, via=via, at=self.clock.now()))
            self._events.append((alert_id, None, self.clock.now(), "ack", None, None, None,
                                 f"{via}:{by or ''}"))
            self.escalations.stop(record, "acknowledged")
            self._cancel_queued(record, "acknowledged")
        return await self._commit_and_emit(record)

    async def cancel(self, alert_id: str, *, by: str | None = None) -> Report:
        """Cancel what has not been delivered yet."""
        record = await self._record(alert_id)
        record.status = dataclasses.replace(record.status, cancelled=True)
        self._events.append((alert_id, None, self.clock.now(), "cancel", None, None, None, by))
        self.escalations.stop(record, "cancelled")
        self._cancel_queued(record, "cancelled")
        return await self._commit_and_emit(record)

    async def resolve(self, alert_id: str, *, by: str | None = None) -> Report:
        """The alert's cause is gone: stop escalation and queued sends."""
        record = await self._record(alert_id)
        record.status = dataclasses.replace(record.status, resolved=True)
        self._events.append((alert_id, None, self.clock.now(), "resolve", None, None, None, by))
        self.escalations.stop(record, "resolved")
        self._cancel_queued(record, "resolved")
        return await self._commit_and_emit(record)

    def _cancel_queued(self, record: AlertRecord, reason: str) -> None:
        now = self.clock.now()
        for delivery in list(record.deliveries.values()):
            if delivery.state is DeliveryState.PENDING and \
                    record.phases.get(delivery.id, (Phase.QUEUED,))[0] == Phase.QUEUED:
                self._set_state(record, delivery, DeliveryState.CANCELLED, now, reason=reason)

    async def _record(self, alert_id: str) -> AlertRecord:
        record = self._open.get(alert_id)
        if record is not None:
            return record
        loaded = await self.store.load_alert(alert_id)
        if loaded is None:
            raise NotFoundError(f"unknown alert {alert_id!r}")
        alert, status, stored = loaded
        return AlertRecord(alert=alert, status=status,
                           deliveries={s.delivery.id: s.delivery for s in stored},
                           phases={s.delivery.id: (s.phase, s.submission_id) for s in stored})

    async def _commit_and_emit(self, record: AlertRecord) -> Report:
        self._open.setdefault(record.alert.id, record)
        await self._save([record.alert.id])
        await self._emit(record)
        return record.report(self.clock.now())

    # -- reports ---------------------------------------------------------------------------

    async def report(self, alert_id: str) -> Report:
        """The current report of an alert (NotFoundError if unknown)."""
        record = self._open.get(alert_id)
        if record is not None:
            return record.report(self.clock.now())
        if alert_id in self._recent:
            return self._recent[alert_id]
        return (await self._record(alert_id)).report(self.clock.now())

    async def wait_final(self, alert_id: str,
                         timeout: float | None = None) -> Report:  # noqa: ASYNC109 - public API
        """Wait until the alert's report is final."""
        report = await self.report(alert_id)
        if report.final:
            return report
        future: asyncio.Future[Report] = asyncio.get_running_loop().create_future()
        self._final_waiters.setdefault(alert_id, []).append(future)
        return await asyncio.wait_for(future, timeout)

    @property
    def open_alerts(self) -> int:
        """Alerts not final yet."""
        return len(self._open)

    def queue_depth(self) -> int:
        """Deliveries waiting for a provider request."""
        return sum(d.queued for d in self._dispatchers.values())

    async def _save(self, alert_ids: Iterable[str], *, publish: bool = True,
                    extra: Iterable[Op] = ()) -> None:
        """Write what changed of the given alerts (deliveries, alert row, new events) in one
        group commit, with their reports' outbox messages unless ``publish`` is False."""
        ops: list[Op] = list(extra)
        now = self.clock.now()
        saved: list[AlertRecord] = []
        for alert_id in set(alert_ids):
            record = self._open.get(alert_id)
            if record is None:
                continue
            report = record.report(now)
            rows = record.unsaved()
            if rows:
                ops.append(Store.op_save_deliveries(rows))
            row = (record.status, report.state.value, report.final)
            if record.saved_row is None or record.saved_row[0] is not row[0] or \
                    record.saved_row[1:] != row[1:]:
                ops.append(Store.op_update_alert(alert_id, record.status, report.state.value,
                                                 report.final, now))
                record.saved_row = row
            if publish:
                ops.extend(self._outbox_ops(report))
            saved.append(record)
        ops.extend(self._take_pending_ops())
        await self.store.commit(ops)
        for record in saved:
            record.mark_saved()

    def _take_pending_ops(self) -> list[Op]:
        """The ops the policy and escalation queued (counters, timers) and unsaved events."""
        ops, self.pending_ops = self.pending_ops, []
        events, self._events = self._events, []
        return ops + ([Store.op_events(events)] if events else [])

    async def _emit_many(self, alert_ids: Iterable[str]) -> None:
        for alert_id in set(alert_ids):
            record = self._open.get(alert_id)
            if record is not None:
                await self._emit(record)

    async def _emit(self, record: AlertRecord) -> None:
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
            while len(self._recent) > 1000:
                self._recent.popitem(last=False)
            for future in self._final_waiters.pop(record.alert.id, []):
                if not future.done():
                    future.set_result(report)

    # -- resuming --------------------------------------------------------------------------

    async def _resume(self) -> None:
        await resume_open_work(self)

    def record(self, alert_id: str) -> AlertRecord | None:
        """The open record of ``alert_id`` (used by tracking and escalation)."""
        return self._open.get(alert_id)

    def deadline_for(self, provider: Provider, alert: Alert, submitted_at: datetime) -> datetime:
        """When tracking of a delivery gives up."""
        seconds = self.config.tracking_deadline() or provider.capabilities.tracking_deadline
        deadline = submitted_at + timedelta(seconds=seconds)
        if alert.expires is not None:
            deadline = min(deadline, max(alert.expires, submitted_at))
        return deadline


def _matches(delivery: Delivery, update: StatusUpdate) -> bool:
    if update.provider_message_id and delivery.provider_message_id:
        return delivery.provider_message_id == update.provider_message_id
    if update.provider_ref and delivery.provider_ref != update.provider_ref:
        return False
    return update.number is None or delivery.recipient.number.lstrip("+") == \
        update.number.lstrip("+")
