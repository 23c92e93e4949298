"""Tracking submitted deliveries until final: record submissions, poll, enforce deadlines.

The deciding is in plain functions (:func:`submitted_decisions`, :func:`status_decisions`,
:func:`overdue_decision`); :class:`Tracker` keeps the poll timers and hands what they decide to
the ledger.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from alertline.clock import Clock
from alertline.engine.decisions import Advance, Decision, SetPhase
from alertline.engine.ledger import Ledger
from alertline.engine.scheduler import Scheduler
from alertline.errors import ProviderError
from alertline.model import Alert, Delivery, DeliveryState
from alertline.providers.base import (
    Batch,
    Provider,
    StatusMode,
    StatusUpdate,
    Submission,
    SubmittedItem,
)
from alertline.redact import Redactor
from alertline.states import Phase
from alertline.store import intents
from alertline.store.stored import StoredSubmission

_LOGGER = logging.getLogger(__name__)

Deadline = Callable[[Provider, Alert, datetime], datetime]
"""When tracking of a delivery submitted at a time gives up (the engine's ``deadline_for``)."""
ErrorSink = Callable[[BaseException | None], None]
"""Told of every provider error of a poll (the engine's ``provider_failed``)."""


# -- decisions -----------------------------------------------------------------------------

def submitted_decisions(delivery: Delivery, result: SubmittedItem, submission: Submission, *,
                        submission_id: str, deadline: datetime, now: datetime) -> list[Decision]:
    """A provider accepted ``delivery`` in ``submission``: it is tracked under the submission
    and moves to the state the provider answered for it."""
    changes: dict[str, Any] = {
        "provider_ref": submission.provider_ref,
        "provider_message_id": result.provider_message_id,
        "provider_status": result.provider_status, "reason": result.reason,
        "attempts": delivery.attempts + 1, "submitted_at": submission.submitted_at,
        "deadline": deadline}
    if result.details:
        changes["details"] = {**delivery.details, **result.details}
    return [SetPhase(delivery.id, Phase.TRACKING, submission_id),
            Advance(delivery.id, result.state, now, changes)]


def status_decisions(deliveries: Mapping[str, Delivery], updates: Iterable[StatusUpdate],
                     now: datetime) -> list[Decision]:
    """The moves that provider status ``updates`` ask of open ``deliveries`` (an update that
    says nothing new is dropped)."""
    decisions: list[Decision] = []
    for update in updates:
        delivery = deliveries.get(update.delivery_id or "")
        if delivery is None or delivery.state.final:
            continue
        if (update.state is delivery.state and update.provider_status ==
                delivery.provider_status and not update.details):
            continue
        changes: dict[str, Any] = {"provider_status": update.provider_status,
                                   "details": {**delivery.details, **update.details}}
        if update.reason is not None:
            changes["reason"] = update.reason
        decisions.append(Advance(delivery.id, update.state, update.at or now, changes))
    return decisions


def overdue_decision(delivery: Delivery, provider: Provider | None,
                     now: datetime) -> Advance | None:
    """A delivery past its tracking deadline ends: as the provider settles its last status
    (e.g. accepted counts as sent), else expired with that status named."""
    if delivery.state.final or delivery.deadline is None or delivery.deadline > now:
        return None
    settled = provider.state_at_deadline(delivery.provider_status) \
        if provider is not None else None
    last = delivery.provider_status or "no final status"
    state, reason = settled or (
        DeliveryState.EXPIRED, f"no final status before the deadline (last: {last})")
    return Advance(delivery.id, state, now, {"reason": reason})


# -- the poll loop -------------------------------------------------------------------------

@dataclass(slots=True)
class Tracked:
    """A submission with open deliveries: ``members`` maps delivery id → alert id."""

    id: str
    provider: str
    submission: Submission
    members: dict[str, str] = field(default_factory=dict)
    interval: float = 0.0


class Tracker:
    """Follows every submission until its deliveries are final or their deadline passes."""

    def __init__(self, ledger: Ledger, providers: Mapping[str, Provider], *, clock: Clock,
                 scheduler: Scheduler, redactor: Redactor, deadline: Deadline,
                 on_error: ErrorSink) -> None:
        self.ledger = ledger
        self.providers = providers
        self.clock = clock
        self.scheduler = scheduler
        self.redactor = redactor
        self._deadline = deadline
        self._on_error = on_error
        self._tracked: dict[str, Tracked] = {}
        self.polls = 0

    @property
    def tracked(self) -> int:
        """Submissions still being tracked."""
        return len(self._tracked)

    async def submitted(self, batch: Batch, submission: Submission) -> None:
        """Store a provider's answer, move deliveries to their new state, start tracking."""
        now = self.clock.now()
        sub_id = uuid.uuid4().hex
        provider_name = self._provider_of(batch)
        provider = self.providers[provider_name]
        results = {item.delivery_id: item for item in submission.items}
        tracked = Tracked(sub_id, provider_name, submission,
                          interval=provider.capabilities.poll_interval)
        touched: set[str] = set()
        for item in batch.items:
            record = self.ledger.record(item.alert_id)
            delivery = record.deliveries.get(item.delivery_id) if record else None
            if record is None or delivery is None or delivery.state.final:
                continue
            touched.add(record.alert.id)
            result = results.get(item.delivery_id) or SubmittedItem(item.delivery_id, item.number)
            deadline = self._deadline(provider, record.alert, submission.submitted_at)
            self.ledger.apply(record, submitted_decisions(
                delivery, result, submission, submission_id=sub_id, deadline=deadline, now=now))
            if not result.state.final:
                tracked.members[delivery.id] = record.alert.id
        # the submission and its deliveries' new phase in one transaction: after a crash a
        # delivery is either still in flight (in doubt) or tracked, never half of each
        await self.ledger.settle(touched, extra=[
            intents.save_submission(sub_id, provider_name, submission)])
        if tracked.members:
            self._tracked[sub_id] = tracked
            self._schedule(tracked, now)

    def _provider_of(self, batch: Batch) -> str:
        for item in batch.items:
            record = self.ledger.record(item.alert_id)
            if record and item.delivery_id in record.deliveries:
                return record.deliveries[item.delivery_id].provider
        raise LookupError("batch without known deliveries")

    def resume(self, submissions: dict[str, StoredSubmission]) -> None:
        """After a restart: track every stored submission that still has open deliveries."""
        now = self.clock.now()
        for sub_id, stored in submissions.items():
            provider = self.providers.get(stored.provider)
            if provider is None:
                _LOGGER.warning("provider %s is no longer configured; its deliveries will expire",
                                stored.provider)
            tracked = Tracked(sub_id, stored.provider, stored.submission,
                              interval=provider.capabilities.poll_interval if provider else 60.0)
            for item in stored.submission.items:
                alert_id = item.delivery_id.rsplit("-", 1)[0]
                if self._open_delivery(alert_id, item.delivery_id) is not None:
                    tracked.members[item.delivery_id] = alert_id
            existing = self._tracked.get(sub_id)
            if existing is not None:  # a take-over in batches: more of a job already tracked
                existing.members.update(tracked.members)
            elif tracked.members:
                self._tracked[sub_id] = tracked
                self.scheduler.call_at(f"poll:{sub_id}", now,
                                       functools.partial(self._poll, tracked))

    def _open_delivery(self, alert_id: str, delivery_id: str) -> Delivery | None:
        record = self.ledger.record(alert_id)
        delivery = record.deliveries.get(delivery_id) if record else None
        return delivery if delivery is not None and not delivery.state.final else None

    def _schedule(self, tracked: Tracked, now: datetime) -> None:
        provider = self.providers.get(tracked.provider)
        deadline = self._earliest_deadline(tracked)
        if provider is not None and provider.capabilities.status is not StatusMode.PUSH:
            due = now + timedelta(seconds=tracked.interval)
            if deadline is not None:
                due = min(due, deadline)
        elif deadline is not None:
            due = deadline
        else:
            return
        self.scheduler.call_at(f"poll:{tracked.id}", due, lambda: self._poll(tracked))

    def _earliest_deadline(self, tracked: Tracked) -> datetime | None:
        deadlines = []
        for delivery_id, alert_id in tracked.members.items():
            record = self.ledger.record(alert_id)
            delivery = record.deliveries.get(delivery_id) if record else None
            if delivery is not None and delivery.deadline is not None:
                deadlines.append(delivery.deadline)
        return min(deadlines) if deadlines else None

    async def _poll(self, tracked: Tracked) -> None:
        self._prune(tracked)
        if not tracked.members:
            self._tracked.pop(tracked.id, None)
            return
        provider = self.providers.get(tracked.provider)
        touched: set[str] = set()
        for update in await self._ask(provider, tracked):
            alert_id = tracked.members.get(update.delivery_id or "")
            record = self.ledger.record(alert_id) if alert_id else None
            if record is not None and self.ledger.apply(
                    record, status_decisions(record.deliveries, [update], self.clock.now())):
                touched.add(record.alert.id)
        touched |= self._expire_overdue(tracked, provider)
        await self.ledger.settle(touched)
        self._prune(tracked)
        if tracked.members:
            cap = provider.capabilities.max_poll_interval if provider else 600.0
            tracked.interval = min(cap, max(tracked.interval * 1.5, tracked.interval + 0.1))
            self._schedule(tracked, self.clock.now())
        else:
            self._tracked.pop(tracked.id, None)

    async def _ask(self, provider: Provider | None, tracked: Tracked) -> list[StatusUpdate]:
        """The provider's news about the open deliveries of ``tracked`` (none for push-only
        providers, or when the poll fails: tracking goes on)."""
        if provider is None or provider.capabilities.status is StatusMode.PUSH:
            return []
        open_items = tuple(i for i in tracked.submission.items if i.delivery_id in tracked.members)
        try:
            self.polls += 1
            return await provider.poll(replace(tracked.submission, items=open_items))
        except ProviderError as err:
            _LOGGER.warning("polling %s failed: %s", tracked.provider,
                            self.redactor.text(str(err)))
            self._on_error(err)
        except Exception as err:  # a poll bug must not stop tracking
            _LOGGER.error("polling %s crashed: %s", tracked.provider,
                          self.redactor.text(repr(err)))
        return []

    def _expire_overdue(self, tracked: Tracked, provider: Provider | None) -> set[str]:
        now = self.clock.now()
        touched = set()
        for delivery_id, alert_id in list(tracked.members.items()):
            record = self.ledger.record(alert_id)
            delivery = record.deliveries.get(delivery_id) if record else None
            if record is None or delivery is None:
                continue
            decision = overdue_decision(delivery, provider, now)
            if decision is not None:
                self.ledger.apply(record, [decision])
                touched.add(alert_id)
        return touched

    def _prune(self, tracked: Tracked) -> None:
        for delivery_id, alert_id in list(tracked.members.items()):
            if self._open_delivery(alert_id, delivery_id) is None:
                del tracked.members[delivery_id]
