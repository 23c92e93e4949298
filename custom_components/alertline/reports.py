"""Delivery reports into Home Assistant: the ``alertline_report`` event, sensor updates, waiters."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.dispatcher import async_dispatcher_send

from alertline import DeliveryState, Engine, Report, ReportWaiters

from .const import ATTR_CONFIG_ENTRY_ID, EVENT_REPORT

_LOGGER = logging.getLogger(__name__)

# starts a task tracked by the config entry (its unload waits; nothing outlives the entry)
type TaskStarter = Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]]


def signal_report(entry_id: str) -> str:
    """The dispatcher signal sent with every report of an entry."""
    return f"alertline_report_{entry_id}"


def signal_counts(entry_id: str) -> str:
    """The dispatcher signal sent when an entry's delivery counts changed."""
    return f"alertline_counts_{entry_id}"


class ReportHub:
    """Receives every committed report of one engine and hands it to Home Assistant."""

    def __init__(self, hass: HomeAssistant, entry_id: str, engine: Engine,
                 start_task: TaskStarter) -> None:
        self._hass = hass
        self._start_task = start_task
        self._entry_id = entry_id
        self._engine = engine
        self.waiters = ReportWaiters(engine)
        self._refresh: asyncio.Task[None] | None = None
        self._refresh_again = False
        self.last_by_route: dict[str, Report] = {}
        self.counts: dict[str, int] = {state.value: 0 for state in DeliveryState}
        self.open_alerts = 0
        self._stopped = False

    def handle(self, report: Report) -> None:
        """Engine listener: fire the event, update entities (kept quick)."""
        payload: dict[str, Any] = {ATTR_CONFIG_ENTRY_ID: self._entry_id, **report.to_json()}
        self._hass.bus.async_fire(EVENT_REPORT, payload)
        if report.alert.route:
            self.last_by_route[report.alert.route] = report
        async_dispatcher_send(self._hass, signal_report(self._entry_id), report)
        self.schedule_count_refresh()

    def schedule_count_refresh(self) -> None:
        """Re-read delivery counts from the store, coalescing bursts into one read at a time."""
        if self._stopped:
            return
        if self._refresh is not None and not self._refresh.done():
            self._refresh_again = True
            return
        self._refresh = self._start_task(self._refresh_counts(), "alertline counts")

    async def async_refresh_counts(self) -> None:
        """Read the delivery counts now."""
        stats = await self._engine.store.stats()
        counts = {state.value: 0 for state in DeliveryState}
        for key, number in stats["deliveries"].items():
            state = key.rsplit("|", 1)[-1]
            counts[state] = counts.get(state, 0) + int(number)
        self.counts = counts
        self.open_alerts = self._engine.open_alerts
        async_dispatcher_send(self._hass, signal_counts(self._entry_id))

    async def _refresh_counts(self) -> None:
        while True:
            self._refresh_again = False
            try:
                await self.async_refresh_counts()
            except Exception:
                _LOGGER.exception("reading delivery counts failed")
            if not self._refresh_again:
                return

    async def async_stop(self) -> None:
        """Finish a running count refresh and cancel waiters (before the store closes)."""
        self._stopped = True
        if self._refresh is not None and not self._refresh.done():
            self._refresh_again = False
            await self._refresh
        self.waiters.close()
