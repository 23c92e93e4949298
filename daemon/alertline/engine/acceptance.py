"""Accepting an alert: idempotency (ids, keys, duplicates), expansion, planning its deliveries.

A request becomes an open alert with its deliveries planned per channel and recipient (or by the
first escalation step), screened by the policy, and written by the ledger in one transaction
before anything is sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime

from alertline.clock import Clock
from alertline.config.sections import Config
from alertline.engine.decisions import AddDelivery, Decision, Queue
from alertline.engine.escalation import EscalationRunner
from alertline.engine.ledger import Ledger
from alertline.engine.policy import Policy
from alertline.errors import ValidationError
from alertline.intake.expand import build_alert, provider_for
from alertline.intake.request import AlertRequest
from alertline.model import Alert, AlertStatus, Delivery, DeliveryState, Report
from alertline.providers.base import Provider
from alertline.records import Accepted, AlertRecord
from alertline.store.errors import StoreRejectedError

ReportOf = Callable[[str], Awaitable[Report]]


def plan_deliveries(alert: Alert, config: Config, providers: Mapping[str, Provider],
                    now: datetime) -> list[Delivery]:
    """One pending delivery per channel and recipient, through the provider the route picks."""
    planned: list[Delivery] = []
    for channel in alert.channels:
        provider = provider_for(alert, channel, config, providers)
        for recipient in alert.recipients:
            planned.append(Delivery(
                id=f"{alert.id}-{len(planned) + 1}", alert_id=alert.id, recipient=recipient,
                channel=channel, provider=provider, state=DeliveryState.PENDING,
                created_at=now, updated_at=now))
    return planned


class Acceptance:
    """Turns requests into open alerts, once each (the engine's front door)."""

    def __init__(self, ledger: Ledger, providers: Mapping[str, Provider], *, config: Config,
                 clock: Clock, policy: Policy, escalations: EscalationRunner,
                 metrics: dict[str, float], report: ReportOf) -> None:
        self.ledger = ledger
        self.providers = providers
        self.config = config
        self.clock = clock
        self.policy = policy
        self.escalations = escalations
        self.metrics = metrics
        self._report = report
        self._accepting: dict[str, asyncio.Future[Accepted]] = {}

    async def accept(self, request: AlertRequest, source: str | None,
                     keys: Iterable[str]) -> Accepted:
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
        return await self._open(alert, keys)

    async def _known(self, alert_id: str | None, keys: list[str]) -> Accepted | None:
        for key in ([alert_id] if alert_id else []) + keys:
            existing = key if self.ledger.record(key) is not None \
                else await self.ledger.store.alert_for_key(key)
            if existing is not None:
                report = await self._report(existing)
                return Accepted(existing, len(report.deliveries), True, report)
        return None

    async def _open(self, alert: Alert, keys: list[str]) -> Accepted:
        """Plan, screen and write the new alert, then queue its deliveries."""
        now = self.clock.now()
        planned = plan_deliveries(alert, self.config, self.providers, now)
        plan = self.escalations.begin(alert, now)
        # an escalating alert starts with its first step's deliveries instead of the planned ones
        decisions: list[Decision] = list(plan.decisions) if plan is not None else [
            AddDelivery(d) for d in planned]
        record = AlertRecord(alert=alert, status=AlertStatus(), deliveries={})
        self.ledger.apply(record, decisions)
        deliveries = list(record.deliveries.values())
        allowance = await self.policy.reserve(alert, deliveries)
        self.ledger.apply(record, self.policy.admit(alert, deliveries, allowance))
        try:
            accepted = await self.ledger.open_new(record, keys)
        except StoreRejectedError:
            # another daemon sharing the store accepted the same id at the same moment
            known = await self._known(alert.id, keys)
            if known is None:
                raise
            self.metrics["alerts_duplicate"] += 1
            return known
        self.ledger.apply(record, [Queue(tuple(record.deliveries))])
        return accepted
