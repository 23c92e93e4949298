"""Tracking submitted deliveries until final: record submissions, poll, enforce deadlines."""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from alertline.errors import ProviderError
from alertline.model import DeliveryState
from alertline.providers.base import Batch, StatusMode, Submission, SubmittedItem
from alertline.store.sqlite import Phase, Store, StoredSubmission

if TYPE_CHECKING:
    from alertline.engine.core import Engine

_LOGGER = logging.getLogger(__name__)


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

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._tracked: dict[str, Tracked] = {}
        self.polls = 0

    @property
    def tracked(self) -> int:
        """Submissions still being tracked."""
        return len(self._tracked)

    async def submitted(self, batch: Batch, submission: Submission) -> None:
        """Store a provider's answer, move deliveries to their new state, start tracking."""
        engine = self.engine
        now = engine.clock.now()
        sub_id = uuid.uuid4().hex
        provider_name = self._provider_of(batch)
        provider = engine.providers[provider_name]
        results = {item.delivery_id: item for item in submission.items}
        tracked = Tracked(sub_id, provider_name, submission,
                          interval=provider.capabilities.poll_interval)
        touched: set[str] = set()
        for item in batch.items:
            record = engine.record(item.alert_id)
            delivery = record.deliveries.get(item.delivery_id) if record else None
            if record is None or delivery is None:
                continue
            touched.add(record.alert.id)
            result = results.get(item.delivery_id) or SubmittedItem(item.delivery_id, item.number)
            record.phases[delivery.id] = (Phase.TRACKING, sub_id)
            extra = {"details": {**delivery.details, **result.details}} if result.details else {}
            engine._set_state(
                record, delivery, result.state, now,
                provider_ref=submission.provider_ref,
                provider_message_id=result.provider_message_id,
                provider_status=result.provider_status, reason=result.reason,
                attempts=delivery.attempts + 1, submitted_at=submission.submitted_at,
                deadline=engine.deadline_for(provider, record.alert, submission.submitted_at),
                **extra)
            record.phases[delivery.id] = (record.phases[delivery.id][0], sub_id)
            if not result.state.final:
                tracked.members[delivery.id] = record.alert.id
        # the submission and its deliveries' new phase in one transaction: after a crash a
        # delivery is either still in flight (in doubt) or tracked, never half of each
        await engine._save(touched, extra=[
            Store.op_save_submission(sub_id, provider_name, submission)])
        await engine._emit_many(touched)
        if tracked.members:
            self._tracked[sub_id] = tracked
            self._schedule(tracked, now)

    def _provider_of(self, batch: Batch) -> str:
        for item in batch.items:
            record = self.engine.record(item.alert_id)
            if record and item.delivery_id in record.deliveries:
                return record.deliveries[item.delivery_id].provider
        raise LookupError("batch without known deliveries")

    def resume(self, submissions: dict[str, StoredSubmission]) -> None:
        """After a restart: track every stored submission that still has open deliveries."""
        now = self.engine.clock.now()
        for sub_id, stored in submissions.items():
            provider = self.engine.providers.get(stored.provider)
            if provider is None:
                _LOGGER.warning("provider %s is no longer configured; its deliveries will expire",
                                stored.provider)
            tracked = Tracked(sub_id, stored.provider, stored.submission,
                              interval=provider.capabilities.poll_interval if provider else 60.0)
            for item in stored.submission.items:
                for alert_id in self._alerts_with(item.delivery_id):
                    tracked.members[item.delivery_id] = alert_id
            if tracked.members:
                self._tracked[sub_id] = tracked
                self.engine.scheduler.call_at(f"poll:{sub_id}", now,
                                              functools.partial(self._poll, tracked))

    def _alerts_with(self, delivery_id: str) -> list[str]:
        alert_id = delivery_id.rsplit("-", 1)[0]
        record = self.engine.record(alert_id)
        if record is None or delivery_id not in record.deliveries:
            return []
        return [alert_id] if not record.deliveries[delivery_id].state.final else []

    def _schedule(self, tracked: Tracked, now: datetime) -> None:
        provider = self.engine.providers.get(tracked.provider)
        deadline = self._earliest_deadline(tracked)
        if provider is not None and provider.capabilities.status is not StatusMode.PUSH:
            due = now + timedelta(seconds=tracked.interval)
            if deadline is not None:
                due = min(due, deadline)
        elif deadline is not None:
            due = deadline
        else:
            return
        self.engine.scheduler.call_at(f"poll:{tracked.id}", due, lambda: self._poll(tracked))

    def _earliest_deadline(self, tracked: Tracked) -> datetime | None:
        deadlines = []
        for delivery_id, alert_id in tracked.members.items():
            record = self.engine.record(alert_id)
            delivery = record.deliveries.get(delivery_id) if record else None
            if delivery is not None and delivery.deadline is not None:
                deadlines.append(delivery.deadline)
        return min(deadlines) if deadlines else None

    async def _poll(self, tracked: Tracked) -> None:
        engine = self.engine
        self._prune(tracked)
        if not tracked.members:
            self._tracked.pop(tracked.id, None)
            return
        provider = engine.providers.get(tracked.provider)
        touched: set[str] = set()
        if provider is not None and provider.capabilities.status is not StatusMode.PUSH:
            open_items = tuple(i for i in tracked.submission.items
                               if i.delivery_id in tracked.members)
            try:
                self.polls += 1
                updates = await provider.poll(replace(tracked.submission, items=open_items))
            except ProviderError as err:
                _LOGGER.warning("polling %s failed: %s", tracked.provider,
                                engine.redactor.text(str(err)))
                engine.provider_failed(err)
                updates = []
            except Exception as err:  # a poll bug must not stop tracking
                _LOGGER.error("polling %s crashed: %s", tracked.provider,
                              engine.redactor.text(repr(err)))
                updates = []
            for update in updates:
                alert_id = tracked.members.get(update.delivery_id or "")
                record = engine.record(alert_id) if alert_id else None
                if record is not None and engine.apply_updates(record, [update]):
                    touched.add(record.alert.id)
        touched |= self._expire_overdue(tracked)
        await engine._save(touched)
        await engine._emit_many(touched)
        self._prune(tracked)
        if tracked.members:
            cap = provider.capabilities.max_poll_interval if provider else 600.0
            tracked.interval = min(cap, max(tracked.interval * 1.5, tracked.interval + 0.1))
            self._schedule(tracked, engine.clock.now())
        else:
            self._tracked.pop(tracked.id, None)

    def _expire_overdue(self, tracked: Tracked) -> set[str]:
        now = self.engine.clock.now()
        touched = set()
        for delivery_id, alert_id in list(tracked.members.items()):
            record = self.engine.record(alert_id)
            delivery = record.deliveries.get(delivery_id) if record else None
            if record is None or delivery is None or delivery.state.final:
                continue
            if delivery.deadline is not None and delivery.deadline <= now:
                provider = self.engine.providers.get(tracked.provider)
                settled = provider.state_at_deadline(delivery.provider_status) \
                    if provider is not None else None
                last = delivery.provider_status or "no final status"
                state, reason = settled or (
                    DeliveryState.EXPIRED, f"no final status before the deadline (last: {last})")
                self.engine._set_state(record, delivery, state, now, reason=reason)
                touched.add(alert_id)
        return touched

    def _prune(self, tracked: Tracked) -> None:
        for delivery_id, alert_id in list(tracked.members.items()):
            record = self.engine.record(alert_id)
            delivery = record.deliveries.get(delivery_id) if record else None
            if delivery is None or delivery.state.final:
                del tracked.members[delivery_id]
