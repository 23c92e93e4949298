"""Heartbeats, a dead-man's switch: a job that stops pinging pages someone.

A heartbeat expects a ping every ``period``; ``grace`` later than that, one alert goes out through
its route (or ``to``), and the next ping resolves it. The alert's id is derived from the missed
deadline, so a check repeated after a crash finds the alert it already sent instead of sending
another. State lives in the store's ``meta`` table: after a restart the deadline still counts from
the last ping, so an outage that began while the daemon was down is alerted at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from alertline.errors import AlertlineError, NotFoundError
from alertline.http.metrics import Family
from alertline.intake.request import parse_request
from alertline.store import intents

if TYPE_CHECKING:
    from alertline.engine.core import Engine

_LOGGER = logging.getLogger(__name__)
META_PREFIX = "heartbeat:"
TIMER_PREFIX = "heartbeat:"
RETRY_SECONDS = 300.0

Publish = Callable[[str, bytes], None]


@dataclass(frozen=True, slots=True)
class HeartbeatSpec:
    """One configured heartbeat."""

    name: str
    period: float
    grace: float
    message: str
    route: str | None = None
    to: tuple[str, ...] = ()
    token: str | None = None

    @classmethod
    def from_config(cls, name: str, raw: dict[str, Any]) -> HeartbeatSpec:
        """From the validated ``heartbeats.<name>`` section."""
        return cls(name=name, period=float(raw["period"]), grace=float(raw["grace"]),
                   message=raw.get("message") or f"Heartbeat {name} missed",
                   route=raw.get("route"), to=tuple(raw.get("to") or ()),
                   token=raw.get("token"))


@dataclass(slots=True)
class HeartbeatState:
    """What survives a restart: since when we wait, the last ping, an open outage's alert."""

    since: datetime
    last_ping: datetime | None = None
    down_since: datetime | None = None
    alert_id: str | None = None
    pings: int = 0
    outages: int = 0

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        def iso(when: datetime | None) -> str | None:
            return when.isoformat() if when else None

        return {"since": iso(self.since), "last_ping": iso(self.last_ping),
                "down_since": iso(self.down_since), "alert_id": self.alert_id,
                "pings": self.pings, "outages": self.outages}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HeartbeatState:
        """From the stored form."""
        def when(key: str) -> datetime | None:
            return datetime.fromisoformat(data[key]) if data.get(key) else None

        since = when("since")
        assert since is not None
        return cls(since=since, last_ping=when("last_ping"), down_since=when("down_since"),
                   alert_id=data.get("alert_id"), pings=int(data.get("pings", 0)),
                   outages=int(data.get("outages", 0)))


class Heartbeats:
    """Every heartbeat of the configuration: pings in, one alert per outage out."""

    def __init__(self, engine: Engine, specs: dict[str, HeartbeatSpec], *,
                 publish: Publish | None = None, base_topic: str = "alertline") -> None:
        self.engine = engine
        self.specs = specs
        self.publish = publish
        self.base_topic = base_topic
        self.states: dict[str, HeartbeatState] = {}
        self._locks = {name: asyncio.Lock() for name in specs}

    @classmethod
    def from_config(cls, engine: Engine, **kwargs: Any) -> Heartbeats:
        """The heartbeats of ``engine``'s configuration."""
        section = engine.config.raw.get("heartbeats") or {}
        return cls(engine, {n: HeartbeatSpec.from_config(n, raw) for n, raw in section.items()},
                   **kwargs)

    def state_topic(self, name: str) -> str:
        """The retained state topic of heartbeat ``name``."""
        return f"{self.base_topic}/heartbeat/{name}/state"

    def deadline(self, name: str) -> datetime:
        """When heartbeat ``name`` is missed unless pinged before."""
        spec, state = self.specs[name], self.states[name]
        return (state.last_ping or state.since) + timedelta(seconds=spec.period + spec.grace)

    async def start(self) -> None:
        """Load each heartbeat's state (new ones start waiting now) and check it at once."""
        now = self.engine.clock.now()
        for name in self.specs:
            stored = await self.engine.store.meta_get(META_PREFIX + name)
            self.states[name] = HeartbeatState.from_json(json.loads(stored)) if stored \
                else HeartbeatState(since=now)
            if not stored:
                await self._save(name)
            await self.check(name)

    async def ping(self, name: str, source: str = "api") -> None:
        """A sign of life: resolve an open outage, and wait a full period again."""
        if name not in self.specs:
            raise NotFoundError(f"unknown heartbeat {name!r}")
        async with self._locks[name]:
            state = await self._refresh(name)
            state.last_ping = self.engine.clock.now()
            state.pings += 1
            alert_id, state.alert_id, state.down_since = state.alert_id, None, None
            await self._save(name)
            if alert_id is not None:
                _LOGGER.info("heartbeat %s: ping (%s) after an outage; resolving %s", name,
                             source, alert_id)
                with contextlib.suppress(NotFoundError):  # the alert is gone already
                    await self.engine.resolve(alert_id, by=f"heartbeat:{source}")
            self._schedule(name, self.deadline(name))
            self._publish(name)

    async def check(self, name: str) -> None:
        """At the deadline: send the outage's one alert (if not sent yet)."""
        async with self._locks[name]:
            state = await self._refresh(name)
            now, deadline = self.engine.clock.now(), self.deadline(name)
            if now < deadline:
                self._schedule(name, deadline)
            elif state.alert_id is None:
                await self._alert(name, deadline)
            self._publish(name)

    async def _alert(self, name: str, deadline: datetime) -> None:
        spec, state = self.specs[name], self.states[name]
        alert_id = f"hb-{name}-{deadline:%Y%m%dT%H%M%SZ}"
        last = state.last_ping.isoformat() if state.last_ping else "never"
        payload: dict[str, Any] = {"id": alert_id, "message": spec.message}
        if spec.route:
            payload["route"] = spec.route
        if spec.to:
            payload["to"] = list(spec.to)
        try:
            accepted = await self.engine.accept(parse_request(payload),
                                                source=f"heartbeat:{name}")
        except AlertlineError as err:  # nobody on call, a cap: try again, never give up
            _LOGGER.error("heartbeat %s missed, but its alert cannot be sent yet (%s); "
                          "retrying in %.0f s", name, err, RETRY_SECONDS)
            self._schedule(name, self.engine.clock.now() + timedelta(seconds=RETRY_SECONDS))
            return
        state.alert_id, state.down_since = accepted.alert_id, deadline
        state.outages += 0 if accepted.duplicate else 1
        _LOGGER.warning("heartbeat %s missed (last ping %s): alert %s", name, last,
                        accepted.alert_id)
        await self._save(name)

    async def _refresh(self, name: str) -> HeartbeatState:
        """The heartbeat's state as stored: daemons sharing a store see each other's pings
        and alerts (another daemon may have taken the ping this one's timer is about)."""
        stored = await self.engine.store.meta_get(META_PREFIX + name)
        if stored:
            self.states[name] = HeartbeatState.from_json(json.loads(stored))
        return self.states[name]

    def _schedule(self, name: str, when: datetime) -> None:
        self.engine.scheduler.call_at(TIMER_PREFIX + name, when, lambda: self.check(name))

    async def _save(self, name: str) -> None:
        await self.engine.store.commit([intents.meta_set(
            META_PREFIX + name, json.dumps(self.states[name].to_json()))])

    def status(self, name: str) -> dict[str, Any]:
        """The payload of ``<base>/heartbeat/<name>/state``."""
        state = self.states[name]
        return {"heartbeat": name, "state": "down" if state.alert_id else "up",
                "last_ping": state.last_ping.isoformat() if state.last_ping else None,
                "deadline": self.deadline(name).isoformat(),
                "down_since": state.down_since.isoformat() if state.down_since else None,
                "alert_id": state.alert_id}

    def _publish(self, name: str) -> None:
        if self.publish is not None:
            self.publish(self.state_topic(name), json.dumps(self.status(name)).encode())

    def republish(self) -> None:
        """Publish every state again (after a reconnect)."""
        for name in self.states:
            self._publish(name)

    def families(self) -> list[Family]:
        """Prometheus metrics of every heartbeat."""
        up = Family("alertline_heartbeat_up", "gauge",
                    "1 while the heartbeat pings in time, 0 during an outage")
        last = Family("alertline_heartbeat_last_ping_timestamp_seconds", "gauge",
                      "Unix time of the last ping (0: never)")
        outages = Family("alertline_heartbeat_outages_total", "counter",
                         "Outages alerted since the heartbeat was configured")
        for name, state in sorted(self.states.items()):
            up.add(0 if state.alert_id else 1, heartbeat=name)
            last.add(state.last_ping.timestamp() if state.last_ping else 0, heartbeat=name)
            outages.add(state.outages, heartbeat=name)
        return [up, last, outages]

