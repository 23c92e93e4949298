"""Guard rails: destination allowlist, send caps, quiet hours / blackout periods, duplicate alerts.

Every delivery passes :meth:`Policy.screen` when it is created (at accept, at each escalation step,
for a voice→SMS fallback): a destination outside ``limits.allow`` (see :mod:`.allowlist`, which
also refuses costly number ranges not named there) or over a cap is ``rejected``
with the rule that stopped it. Caps count deliveries per channel in fixed UTC windows (hour, day),
globally and per route; the counters live in the store's ``counters`` table, written in the same
transaction as the deliveries they count; in a cluster, a new alert's sends are first reserved in
the shared store (:meth:`Policy.reserve`), so daemons accepting at once never pass a cap together.
Quiet hours (:mod:`.quiet_hours`) are checked when a delivery is handed to its
provider (:meth:`Policy.quiet_plan`): providers that schedule natively get blackout periods, for
the others the send is held until the window ends.

The policy decides; it returns decisions (a rejection, a count, a note) that the engine's ledger
applies and writes.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from alertline.clock import Clock
from alertline.engine.allowlist import Allowlist
from alertline.engine.decisions import Advance, Annotate, CountSend, Decision
from alertline.engine.quiet_hours import QuietWindow, is_quiet_window, quiet_window, time_zone
from alertline.model import Alert, Channel, Delivery, DeliveryState, Priority
from alertline.providers.base import Provider
from alertline.store.stored import Reservation

__all__ = ["Held", "Policy", "QuietWindow", "is_quiet_window", "quiet_window", "time_zone"]

_LOGGER = logging.getLogger(__name__)

PERIODS: dict[str, tuple[str, timedelta]] = {
    "per_hour": ("hour", timedelta(hours=1)), "per_day": ("day", timedelta(days=1))}
CAPPED_UNITS = {Channel.SMS: "SMS", Channel.VOICE: "voice calls"}
BLACKOUT_HORIZON = timedelta(hours=48)  # Retarus jobs live at most 48 h (validityMin 2880)
MAX_CHAINED_WINDOWS = 16

# -- caps ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Cap:
    """At most ``limit`` deliveries on ``channel`` per window, globally or for one route."""

    rule: str
    route: str | None
    period: str
    length: timedelta
    channel: Channel
    limit: int

    @property
    def key(self) -> str:
        """The store counter's key."""
        return f"cap:{self.route or '*'}:{self.period}:{self.channel.value}"

    def window_start(self, now: datetime) -> datetime:
        """Start of the UTC window ``now`` falls in."""
        utc = now.astimezone(UTC)
        if self.period == "day":
            return utc.replace(hour=0, minute=0, second=0, microsecond=0)
        return utc.replace(minute=0, second=0, microsecond=0)

    @property
    def reason(self) -> str:
        """Why a delivery over this cap is rejected, naming the rule."""
        return (f"cap of {self.limit} {CAPPED_UNITS[self.channel]} per {self.period} reached "
                f"({self.rule})")


def caps_from(limits: dict[str, Any]) -> list[Cap]:
    """Every cap the ``limits`` section sets, global ones first."""
    scopes: list[tuple[str | None, str, dict[str, Any]]] = [(None, "limits", limits)]
    scopes += [(name, f"limits.routes.{name}", section)
               for name, section in (limits.get("routes") or {}).items()]
    caps = []
    for route, prefix, section in scopes:
        for key, (period, length) in PERIODS.items():
            for channel_name, limit in (section.get(key) or {}).items():
                if limit is not None:
                    caps.append(Cap(f"{prefix}.{key}.{channel_name}", route, period, length,
                                    Channel(channel_name), int(limit)))
    return caps


# -- the policy ----------------------------------------------------------------------------

CounterRead = Callable[[str, datetime], Awaitable[int]]
"""Reads a cap counter's value for the window starting at a time (the store's ``counter``)."""

Reserve = Callable[[Sequence[tuple[str, datetime, int]], int], Awaitable[Reservation]]
"""Takes sends under caps ``(key, window_start, limit)`` atomically in a store several daemons
share (``ClusterStore.reserve``)."""

Allowance = dict[Channel, int]
"""Sends reserved per channel for one screening."""


class QuietContact(Protocol):
    """What the policy reads of a configured contact (``config.contacts``)."""

    @property
    def name(self) -> str:
        """The contact's name."""

    @property
    def timezone(self) -> str | None:
        """The contact's IANA time zone, if set."""

    @property
    def quiet_hours(self) -> tuple[str, ...]:
        """The contact's quiet-hours windows."""


@dataclass(frozen=True, slots=True)
class Held:
    """A delivery is held by quiet hours until ``until`` (``window`` is the cause)."""

    until: datetime
    window: QuietWindow


class Policy:
    """The guard rails of one engine, from the config's ``limits`` and ``contacts``."""

    def __init__(self, limits: dict[str, Any], contacts: Mapping[str, QuietContact], *,
                 clock: Clock, providers: Mapping[str, Provider], counter: CounterRead) -> None:
        self.contacts = contacts
        self.clock = clock
        self.providers = providers
        self._counter = counter
        self.allowlist = Allowlist(limits.get("allow") or [])
        self.caps = caps_from(limits)
        self.zone = ZoneInfo(limits.get("timezone") or "UTC")
        self.high_priority_overrides = (limits.get("quiet_hours_override") or "high") == "high"
        self.duplicate_window = timedelta(seconds=float(limits.get("duplicate_window") or 0))
        self._counts: dict[str, tuple[datetime, int]] = {}
        self.reserve_sends: Reserve | None = None
        """Set in a cluster: new alerts' sends are then reserved in the shared store before
        they are screened, so daemons accepting at once never exceed a cap together."""
        self._recent: OrderedDict[tuple[str, str], tuple[str, datetime]] = OrderedDict()

    async def load(self) -> None:
        """Read the current windows' counters from the store (at start, before any send)."""
        now = self.clock.now()
        for cap in self.caps:
            start = cap.window_start(now)
            self._counts[cap.key] = (start, await self._counter(cap.key, start))

    # -- screening new deliveries ------------------------------------------------------------

    async def reserve(self, alert: Alert, deliveries: list[Delivery]) -> Allowance | None:
        """In a cluster: take the capped sends ``deliveries`` need in the shared store, all
        caps of a channel at once; the sends granted per channel (None when not clustered)."""
        if self.reserve_sends is None:
            return None
        now = self.clock.now()
        wanted = Counter(d.channel for d in deliveries if d.state is DeliveryState.PENDING and
                         self.allowlist_reason(d.recipient.number) is None)
        allowance: Allowance = {}
        for channel, count in wanted.items():
            caps = self._applicable(alert, channel)
            if not caps:
                continue
            taken = await self.reserve_sends(
                [(cap.key, cap.window_start(now), cap.limit) for cap in caps], count)
            for cap in caps:
                self._counts[cap.key] = (cap.window_start(now), taken.values[cap.key])
            allowance[channel] = taken.granted
        return allowance

    def admit(self, alert: Alert, deliveries: list[Delivery],
              allowance: Allowance | None = None) -> list[Decision]:
        """Screen a newly accepted alert's deliveries (against the sends ``allowance``
        reserved, if any) and remember it for duplicate checks."""
        if self.duplicate_window and alert.route:
            self._recent[(alert.route, alert.message.strip())] = (alert.id, alert.created_at)
        return self.screen(alert, deliveries, allowance)

    def screen(self, alert: Alert, deliveries: list[Delivery],
               allowance: Allowance | None = None) -> list[Decision]:
        """Reject pending ``deliveries`` outside the allowlist or over a cap; count the rest
        (and note those that quiet hours hold). Sends of ``allowance`` (reserved in a shared
        store) are counted already: past them, the channel's cap is reached."""
        now = self.clock.now()
        decisions: list[Decision] = []
        for delivery in deliveries:
            if delivery.state is not DeliveryState.PENDING:
                continue
            channel = delivery.channel
            reserved = allowance is not None and channel in allowance
            reason = self.allowlist_reason(delivery.recipient.number)
            if reason is None and reserved:
                assert allowance is not None
                reason = None if allowance[channel] > 0 else self._full_cap(alert, channel, now)
                allowance[channel] -= reason is None
            elif reason is None:
                reason = self._cap_reason(alert, channel, now)
            if reason is not None:
                _LOGGER.warning("%s rejected: %s", delivery.id, reason)
                decisions.append(Advance(delivery.id, DeliveryState.REJECTED, now,
                                         {"reason": reason}))
                continue
            if not reserved:
                decisions += self._count(alert, channel, now)
            decisions += self._note_hold(alert, delivery, now)
        return decisions

    def allowlist_reason(self, number: str) -> str | None:
        """Why ``number`` may not be called or texted, or None if the allowlist lets it pass."""
        return self.allowlist.reason(number)

    def _applicable(self, alert: Alert, channel: Channel) -> list[Cap]:
        return [cap for cap in self.caps if cap.channel is channel and
                (cap.route is None or cap.route == alert.route)]

    def _value(self, cap: Cap, now: datetime) -> int:
        start, value = self._counts.get(cap.key, (None, 0))
        return value if start == cap.window_start(now) else 0

    def _cap_reason(self, alert: Alert, channel: Channel, now: datetime) -> str | None:
        for cap in self._applicable(alert, channel):
            if self._value(cap, now) >= cap.limit:
                return cap.reason
        return None

    def _full_cap(self, alert: Alert, channel: Channel, now: datetime) -> str:
        """Why a send past a reservation is refused: the (first) cap that is full."""
        caps = self._applicable(alert, channel)
        return next((cap.reason for cap in caps if self._value(cap, now) >= cap.limit),
                    caps[0].reason)

    def _count(self, alert: Alert, channel: Channel, now: datetime) -> list[Decision]:
        counted: list[Decision] = []
        for cap in self._applicable(alert, channel):
            start = cap.window_start(now)
            self._counts[cap.key] = (start, self._value(cap, now) + 1)
            counted.append(CountSend(cap.key, start))
        return counted

    def usage(self) -> dict[str, dict[str, Any]]:
        """Each cap's rule, limit and use in the current window (for reports and diagnostics)."""
        now = self.clock.now()
        return {cap.rule: {"limit": cap.limit, "used": self._value(cap, now),
                           "window_start": cap.window_start(now).isoformat()}
                for cap in self.caps}

    # -- duplicates --------------------------------------------------------------------------

    def duplicate_of(self, alert: Alert) -> str | None:
        """The id of an alert with the same route and message within ``limits.duplicate_window``."""
        if not self.duplicate_window or not alert.route:
            return None
        now = self.clock.now()
        while self._recent:
            _, (_, seen_at) = next(iter(self._recent.items()))
            if now - seen_at < self.duplicate_window:
                break
            self._recent.popitem(last=False)
        earlier = self._recent.get((alert.route, alert.message.strip()))
        return earlier[0] if earlier is not None else None

    # -- quiet hours -------------------------------------------------------------------------

    def windows(self, alert: Alert, delivery: Delivery) -> list[QuietWindow]:
        """The quiet-hours windows that apply to ``delivery``: the alert's (or its route's)
        and its contact's, in the contact's time zone (else ``limits.timezone``)."""
        contact = self.contacts.get(delivery.recipient.contact or "")
        zone = ZoneInfo(contact.timezone) if contact and contact.timezone else self.zone
        found = [QuietWindow(text, "quiet_hours", zone) for text in alert.quiet_hours]
        if contact is not None:
            found += [QuietWindow(text, f"contacts.{contact.name}.quiet_hours", zone)
                      for text in contact.quiet_hours]
        return found

    def _applies(self, alert: Alert, delivery: Delivery) -> list[QuietWindow]:
        if self.high_priority_overrides and alert.priority is Priority.HIGH:
            return []
        return self.windows(alert, delivery)

    def hold_until(self, alert: Alert, delivery: Delivery,
                   now: datetime) -> tuple[datetime, QuietWindow] | None:
        """When the quiet hours ``delivery`` is in end (following back-to-back windows)."""
        windows = self._applies(alert, delivery)
        until, cause = now, None
        for _ in range(MAX_CHAINED_WINDOWS):
            ends = [(end, window) for window in windows
                    if (end := window.end_if_inside(until)) is not None]
            if not ends:
                break
            until, cause = max(ends, key=lambda pair: pair[0])
        return (until, cause) if cause is not None else None

    def _note_hold(self, alert: Alert, delivery: Delivery, now: datetime) -> list[Decision]:
        """Show in the report that a new delivery waits for quiet hours to end."""
        if self._schedules_natively(delivery):
            return []
        held = self.hold_until(alert, delivery, now)
        if held is None:
            return []
        until, window = held
        return [Annotate(delivery.id, {**delivery.details, "held_until": until.isoformat(),
                                       "held_by": f"quiet hours {window.text} ({window.rule})"})]

    def _schedules_natively(self, delivery: Delivery) -> bool:
        provider = self.providers.get(delivery.provider)
        return provider is not None and provider.capabilities.scheduling

    def quiet_plan(self, alert: Alert, delivery: Delivery) -> tuple[str, ...] | Held:
        """How to send ``delivery`` now: the blackout periods to pass to a provider that
        schedules natively (empty if none apply), or :class:`Held` when quiet hours hold it
        (the engine queues it again when the window ends)."""
        now = self.clock.now()
        if self._schedules_natively(delivery):
            periods = [p for w in self._applies(alert, delivery)
                       for p in w.periods(now, BLACKOUT_HORIZON)]
            return tuple(sorted(dict.fromkeys(periods)))
        held = self.hold_until(alert, delivery, now)
        if held is None:
            return ()
        until, window = held
        _LOGGER.info("%s held until %s by quiet hours (%s)", delivery.id, until.isoformat(),
                     window.rule)
        return Held(until, window)
