"""Sending: from pending deliveries to provider requests, and what their outcome decides.

Pending deliveries are grouped into batches per provider (:mod:`.dispatch`); a batch is marked in
flight durably before its request, and its outcome goes to tracking (accepted), failover (failed)
or back to the queue (refused for load). Every change goes through the ledger.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import datetime

from alertline.clock import Clock
from alertline.config.sections import Config
from alertline.engine.decisions import Advance, Queue
from alertline.engine.dispatch import BatchKey, Dispatcher
from alertline.engine.escalation import EscalationRunner
from alertline.engine.failover import Failure, next_provider, submission_failed
from alertline.engine.ledger import Ledger
from alertline.engine.policy import Held, Policy
from alertline.engine.scheduler import Scheduler
from alertline.engine.tracking import Deadline, ErrorSink, Tracker
from alertline.errors import RateLimitedError
from alertline.http.web.links import LinkedTexts
from alertline.intake.expand import personalise
from alertline.model import Channel, Delivery, DeliveryState
from alertline.providers.base import Batch, BatchItem, Provider, Submission
from alertline.records import AlertRecord
from alertline.redact import Redactor
from alertline.states import Phase

_LOGGER = logging.getLogger(__name__)

EXPIRED_UNSENT = "expired before it could be sent"


def expiry_decision(record: AlertRecord, delivery: Delivery, now: datetime) -> Advance | None:
    """A delivery whose alert expired before its request went out ends as expired."""
    if record.alert.expires is not None and record.alert.expires <= now:
        return Advance(delivery.id, DeliveryState.EXPIRED, now, {"reason": EXPIRED_UNSENT})
    return None


def may_wait(*, now: datetime, deadline: datetime, resumes: datetime, outage: bool,
             elsewhere: bool) -> bool:
    """Whether an item a provider refused for load goes back to its queue: not once its
    deadline has passed, and not where the route has another provider while the refusal may be
    an outage (a 503) or the provider's pause outlasts the deadline."""
    return not (now >= deadline or (elsewhere and (outage or resumes >= deadline)))


class Sender:
    """Queues pending deliveries on their providers' dispatchers and records each request."""

    def __init__(self, ledger: Ledger, providers: Mapping[str, Provider], *, config: Config,
                 clock: Clock, scheduler: Scheduler, redactor: Redactor, policy: Policy,
                 escalations: EscalationRunner, tracker: Tracker, metrics: dict[str, float],
                 on_error: ErrorSink, deadline: Deadline, max_in_flight: int = 4) -> None:
        self.ledger = ledger
        self.providers = providers
        self.config = config
        self.clock = clock
        self.scheduler = scheduler
        self.redactor = redactor
        self.policy = policy
        self.escalations = escalations
        self.tracker = tracker
        self.metrics = metrics
        self._on_error = on_error
        self._deadline = deadline
        self.linked_texts: LinkedTexts | None = None
        self.dispatchers = {
            name: Dispatcher(provider, self._prepare_batch, self._batch_finished,
                             max_in_flight=max_in_flight, throttled=self._batch_throttled,
                             clock=clock)
            for name, provider in providers.items()}

    # -- queueing --------------------------------------------------------------------------

    def queue(self, record: AlertRecord, deliveries: list[Delivery]) -> None:
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
            blackout = self._blackout(record, delivery)
            if blackout is None:
                continue  # held for quiet hours; queued again when they end
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
            self.dispatchers[provider].enqueue(
                BatchKey.for_alert(alert, channel, blackout, content=content), items)

    def _blackout(self, record: AlertRecord, delivery: Delivery) -> tuple[str, ...] | None:
        """The blackout periods for ``delivery``'s request, or None while quiet hours hold it
        (a timer queues it again when they end)."""
        key = f"quiet:{delivery.id}"
        plan = self.policy.quiet_plan(record.alert, delivery)
        if isinstance(plan, Held):
            self.scheduler.call_at(key, plan.until,
                                   lambda: self._unquiet(record.alert.id, delivery.id))
            return None
        provider = self.providers.get(delivery.provider)
        if provider is None or not provider.capabilities.scheduling:
            self.scheduler.cancel(key)
        return plan

    async def _unquiet(self, alert_id: str, delivery_id: str) -> None:
        record = self.ledger.record(alert_id)
        delivery = record.deliveries.get(delivery_id) if record else None
        if record is not None and delivery is not None and \
                delivery.state is DeliveryState.PENDING:
            self.ledger.apply(record, [Queue((delivery_id,))])

    def _content_key(self, provider: str, item: BatchItem) -> str:
        """What must be equal for items to share one request of ``provider``."""
        capabilities = self.providers[provider].capabilities
        if not capabilities.shared_content:
            return ""
        return item.template if capabilities.personalization else item.text

    async def _release(self, alert_id: str) -> None:
        record = self.ledger.record(alert_id)
        if record is not None:
            self.ledger.release_hold(record)
            self.ledger.apply(record, [Queue(tuple(record.deliveries))])

    # -- one request -----------------------------------------------------------------------

    def _pending(self, item: BatchItem) -> tuple[AlertRecord, Delivery] | None:
        record = self.ledger.record(item.alert_id)
        delivery = record.deliveries.get(item.delivery_id) if record else None
        if record is None or delivery is None or delivery.state is not DeliveryState.PENDING:
            return None
        return record, delivery

    async def _prepare_batch(self, batch: Batch) -> Batch | None:
        """Drop items cancelled or expired meanwhile; mark the rest in flight (durably)."""
        now = self.clock.now()
        keep: list[BatchItem] = []
        in_flight: list[tuple[AlertRecord, Delivery]] = []
        expired: set[str] = set()
        for item in batch.items:
            found = self._pending(item)
            if found is None:
                continue
            record, delivery = found
            expiry = expiry_decision(record, delivery, now)
            if expiry is not None:
                self.ledger.apply(record, [expiry])
                expired.add(record.alert.id)
                continue
            in_flight.append((record, delivery))
            keep.append(item)
        if expired:
            await self.ledger.save(expired)
        if in_flight:
            await self.ledger.save_phases(in_flight, Phase.IN_FLIGHT)
        await self.ledger.emit_many(expired)
        return dataclasses.replace(batch, items=tuple(keep)) if keep else None

    async def _batch_finished(self, batch: Batch, submission: Submission | None,
                              error: BaseException | None, seconds: float) -> None:
        """Record a provider request's outcome and start tracking it."""
        self.metrics["provider_requests"] += 1
        self.metrics["provider_seconds"] += seconds
        if submission is None:
            self.metrics["provider_errors"] += 1
            self._on_error(error)
            await self._failed(batch, error)
            return
        await self.tracker.submitted(batch, submission)

    async def _failed(self, batch: Batch, error: BaseException | None) -> None:
        """Fail over or fail every item of a failed request (:func:`submission_failed`)."""
        now = self.clock.now()
        failure = Failure.of(error, self.redactor)
        touched: set[str] = set()
        requeue: dict[str, list[str]] = {}
        for item in batch.items:
            record = self.ledger.record(item.alert_id)
            delivery = record.deliveries.get(item.delivery_id) if record else None
            if record is None or delivery is None:
                continue
            touched.add(record.alert.id)
            decision = submission_failed(record.alert, delivery, failure, config=self.config,
                                         providers=self.providers, now=now)
            self.ledger.apply(record, [decision])
            if not isinstance(decision, Advance):
                requeue.setdefault(record.alert.id, []).append(delivery.id)
        await self.ledger.save(touched)
        for alert_id, delivery_ids in requeue.items():
            record = self.ledger.record(alert_id)
            if record is not None:
                self.ledger.apply(record, [Queue(tuple(delivery_ids))])
        await self.ledger.emit_many(touched)

    async def _batch_throttled(self, batch: Batch, error: BaseException,
                               seconds: float) -> Batch | None:
        """A provider refused ``batch`` for load: the items whose alert may still wait (before
        its expiry and the tracking deadline, counted from the delivery's creation) go back to
        the queue (durably ``queued`` again: nothing was sent); the others fail over to the
        route's next provider, or fail as "rate limited".

        A rate limit says "later", so its items wait; where the route has another provider they
        move on at once if the provider's pause outlasts the deadline (a long Retry-After), and
        so do the items of a 503, which may be an outage rather than a limit."""
        self.metrics["provider_requests"] += 1
        self.metrics["provider_errors"] += 1
        self.metrics["provider_rate_limited"] = self.metrics.get("provider_rate_limited", 0) + 1
        self.metrics["provider_seconds"] += seconds
        self._on_error(error)
        now = self.clock.now()
        wait: list[tuple[AlertRecord, Delivery]] = []
        give_up: list[BatchItem] = []
        for item in batch.items:
            found = self._pending(item)
            if found is None:
                continue
            record, delivery = found
            owner = self.providers.get(delivery.provider)
            deadline = (self._deadline(owner, record.alert, delivery.created_at)
                        if owner is not None else now)
            dispatcher = self.dispatchers.get(delivery.provider)
            resumes = (dispatcher.paused_until if dispatcher else None) or now
            elsewhere = next_provider(record.alert, delivery, self.config,
                                      self.providers) is not None
            if may_wait(now=now, deadline=deadline, resumes=resumes, elsewhere=elsewhere,
                        outage=not isinstance(error, RateLimitedError)):
                wait.append((record, delivery))
            else:
                give_up.append(item)
        if wait:
            await self.ledger.save_phases(wait, Phase.QUEUED)
        if give_up:
            await self._failed(dataclasses.replace(batch, items=tuple(give_up)), error)
        waiting = {d.id for _, d in wait}
        items = tuple(i for i in batch.items if i.delivery_id in waiting)
        return dataclasses.replace(batch, items=items) if items else None

    # -- state -----------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Whether no dispatcher has anything queued or in flight."""
        return all(d.idle for d in self.dispatchers.values())

    def queued(self) -> int:
        """Deliveries waiting for a provider request."""
        return sum(d.queued for d in self.dispatchers.values())

