"""Waiting for an alert's report to reach a condition (its provider answered, it is final).

A host that accepts an alert on a user's behalf (Home Assistant's actions, the CLI) waits for the
first answer or the final report. One :class:`ReportWaiters` listens to the engine once and wakes
the waiters of the alert a report is about; the report current when a wait starts counts too, so
a report committed before the wait began is never missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from alertline.model import DeliveryState, Report

if TYPE_CHECKING:  # handed the engine by its host; only its subscribe and report are used
    from alertline.engine.core import Engine

__all__ = ["ReportCondition", "ReportWaiters", "nothing_sent", "provider_answered"]

_LOGGER = logging.getLogger(__name__)

ReportCondition = Callable[[Report], bool]
_REFUSED = (DeliveryState.FAILED, DeliveryState.REJECTED)


def provider_answered(report: Report) -> bool:
    """Whether the provider has answered for every delivery (or nothing more will happen)."""
    return report.final or all(d.state is not DeliveryState.PENDING for d in report.deliveries)


def nothing_sent(report: Report) -> bool:
    """Whether every delivery failed before a provider took it (the provider refused the
    request, or a guard rail such as the allowlist or a cap rejected it)."""
    return bool(report.deliveries) and all(
        d.state in _REFUSED and d.submitted_at is None for d in report.deliveries)


class ReportWaiters:
    """Futures resolved by the engine's reports: ``wait(alert_id, condition, within)``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._waiters: dict[str, list[tuple[ReportCondition, asyncio.Future[Report]]]] = {}
        self._unsubscribe = engine.subscribe(self.handle)

    def handle(self, report: Report) -> None:
        """Engine listener: resolve the waiters of the report's alert that it satisfies."""
        for condition, future in self._waiters.get(report.alert.id, []):
            if not future.done() and condition(report):
                future.set_result(report)

    async def wait(self, alert_id: str, condition: ReportCondition, within: float, *,
                   latest_on_timeout: bool = False) -> Report:
        """The first report of ``alert_id`` that meets ``condition``. After ``within`` seconds:
        TimeoutError, or with ``latest_on_timeout`` the alert's report as it is then.
        An unknown ``alert_id`` raises the engine's ``NotFoundError``."""
        future: asyncio.Future[Report] = asyncio.get_running_loop().create_future()
        waiter = (condition, future)
        self._waiters.setdefault(alert_id, []).append(waiter)
        try:
            current = await self._engine.report(alert_id)
            if condition(current):
                return current
            try:
                return await asyncio.wait_for(future, within)
            except TimeoutError:
                if not latest_on_timeout:
                    raise
                _LOGGER.debug("alert %s: no matching report within %.0f s", alert_id, within)
                return await self._engine.report(alert_id)
        finally:
            waiters = self._waiters.get(alert_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(alert_id, None)

    def close(self) -> None:
        """Stop listening and cancel every wait (the host is stopping the engine)."""
        self._unsubscribe()
        for waiters in self._waiters.values():
            for _, future in waiters:
                future.cancel()
        self._waiters.clear()

