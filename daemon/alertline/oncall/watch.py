"""Watching the providers themselves: each one's ``check()`` (credentials and reachability) runs
every ``watch.every``; after ``watch.after`` failed checks in a row the provider is down.

While it is down, routes try it last, so new alerts go straight to the next provider instead of
waiting for its timeouts, and one alert goes out through ``watch.route`` (where the down provider
also comes last). The next good check marks it up again and resolves that alert. A rate-limited
answer counts as reachable: the provider is there, only busy. An outage is kept in the store, so a
restart neither forgets to resolve its alert nor sends a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from alertline.errors import AlertlineError, NotFoundError, RateLimitedError
from alertline.http.metrics import Family
from alertline.intake.request import parse_request
from alertline.store import intents

if TYPE_CHECKING:
    from alertline.engine.core import Engine
    from alertline.providers.base import Provider

_LOGGER = logging.getLogger(__name__)
TIMER_KEY = "provider-watch"
META_PREFIX = "provider-watch:"
CHECK_TIMEOUT = 30.0


@dataclass(slots=True)
class ProviderHealth:
    """What the watch knows of one provider."""

    up: bool = True
    checked_at: datetime | None = None
    failures: int = 0
    failing_since: datetime | None = None
    error: str | None = None
    alert_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """For ``/healthz``."""
        return {"up": self.up, "checked_at": self.checked_at.isoformat()
                if self.checked_at else None, "failures": self.failures, "error": self.error}


class ProviderWatch:
    """Checks every provider of ``engine`` on its scheduler; alerts and resolves outages."""

    def __init__(self, engine: Engine, *, every: float = 300.0, after: int = 2,
                 route: str | None = None, timeout: float = CHECK_TIMEOUT) -> None:
        self.engine = engine
        self.every = every
        self.after = after
        self.route = route
        self.timeout = timeout
        self.health = {name: ProviderHealth() for name in engine.providers}
        self._restored = False

    @classmethod
    def from_config(cls, engine: Engine) -> ProviderWatch | None:
        """The watch of ``engine``'s configuration (None when ``watch.enabled`` is false)."""
        section = engine.config.raw.get("watch") or {}
        if not section.get("enabled", True):
            return None
        return cls(engine, every=float(section.get("every", 300.0)),
                   after=int(section.get("after", 2)), route=section.get("route"))

    def start(self) -> None:
        """Check at once, then every ``every`` seconds."""
        self.engine.scheduler.call_at(TIMER_KEY, self.engine.clock.now(), self._run)

    async def _run(self) -> None:
        self.engine.scheduler.call_at(
            TIMER_KEY, self.engine.clock.now() + timedelta(seconds=self.every), self._run)
        await self.check_all()

    async def check_all(self) -> None:
        """One round of checks, all providers at once (the first takes up stored outages)."""
        if not self._restored:
            await self._restore()
        names = list(self.engine.providers)
        results = await asyncio.gather(*(self._check(self.engine.providers[n]) for n in names))
        for name, error in zip(names, results, strict=True):
            await self._record(name, error)

    async def _check(self, provider: Provider) -> str | None:
        """None if ``provider`` answered its check, else why not (secrets masked)."""
        try:
            await asyncio.wait_for(provider.check(), self.timeout)
        except RateLimitedError:
            return None
        except TimeoutError:
            return f"no answer within {self.timeout:.0f} s"
        except Exception as err:  # every failure of a check means the same: not usable now
            return self.engine.redactor.text(str(err) or type(err).__name__)
        return None

    async def _record(self, name: str, error: str | None) -> None:
        health = self.health.setdefault(name, ProviderHealth())
        now = self.engine.clock.now()
        health.checked_at, health.error = now, error
        if error is None:
            health.failures, health.failing_since = 0, None
            if not health.up:
                await self._recovered(name, health)
            return
        health.failures += 1
        health.failing_since = health.failing_since or now
        _LOGGER.warning("provider %s: check failed (%d in a row): %s", name, health.failures,
                        error)
        if health.up and health.failures >= self.after:
            health.up = False
            self.engine.providers[name].healthy = False
            _LOGGER.error("provider %s is down after %d failed checks: %s", name,
                          health.failures, error)
            await self._alert(name, health)
            await self._save(name, health)
        elif not health.up and health.alert_id is None:
            await self._alert(name, health)  # the last attempt could not be sent: again
            await self._save(name, health)

    async def _alert(self, name: str, health: ProviderHealth) -> None:
        if not self.route:
            return
        since = health.failing_since or self.engine.clock.now()
        alert_id = f"watch-{name}-{since:%Y%m%dT%H%M%SZ}"
        message = (f"Provider {name} is down since {since:%Y-%m-%d %H:%M} UTC: {health.error}. "
                   "Alerts go to the next provider of their route.")
        try:
            accepted = await self.engine.accept(parse_request(
                {"id": alert_id, "message": message[:1000], "route": self.route}),
                source="provider-watch")
        except AlertlineError as err:
            _LOGGER.error("provider %s is down, but the alert about it cannot be sent yet: %s",
                          name, err)
            return
        health.alert_id = accepted.alert_id

    async def _recovered(self, name: str, health: ProviderHealth) -> None:
        health.up = True
        self.engine.providers[name].healthy = True
        _LOGGER.info("provider %s is up again", name)
        alert_id, health.alert_id = health.alert_id, None
        await self._save(name, health)
        if alert_id is not None:
            with contextlib.suppress(NotFoundError):
                await self.engine.resolve(alert_id, by="provider-watch")

    async def _restore(self) -> None:
        """Take up the outages stored by the run before a restart: those providers stay down
        (routes try them last) until a check answers, which resolves their alert."""
        for name, health in self.health.items():
            stored = await self.engine.store.meta_get(META_PREFIX + name)
            if not stored or not (outage := json.loads(stored)):
                continue
            health.up, health.failures = False, self.after
            health.failing_since = datetime.fromisoformat(outage["failing_since"])
            health.alert_id, health.error = outage.get("alert_id"), outage.get("error")
            self.engine.providers[name].healthy = False
            _LOGGER.warning("provider %s was down when alertline stopped; checking it again",
                            name)
        self._restored = True

    async def _save(self, name: str, health: ProviderHealth) -> None:
        outage = {} if health.up else {
            "failing_since": (health.failing_since or self.engine.clock.now()).isoformat(),
            "alert_id": health.alert_id, "error": health.error}
        try:
            await self.engine.store.commit([intents.meta_set(META_PREFIX + name,
                                                             json.dumps(outage))])
        except Exception as err:  # the store's own outage: remembered in memory meanwhile
            _LOGGER.error("provider %s: keeping its state failed: %s", name, err)

    def to_json(self) -> dict[str, Any]:
        """Every provider's health, for ``/healthz``."""
        return {name: health.to_json() for name, health in sorted(self.health.items())}

    def families(self) -> list[Family]:
        """``alertline_provider_up{provider=…}`` for every provider checked so far."""
        family = Family("alertline_provider_up", "gauge",
                        "1 while the provider's check succeeds, 0 once it is down")
        for name, health in sorted(self.health.items()):
            if health.checked_at is not None:
                family.add(1 if health.up else 0, provider=name)
        return [family]
