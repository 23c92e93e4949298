"""The provider watch on a manual clock: down after ``after`` failed checks, alerts through a route
that avoids the provider, new alerts skip it, and recovery resolves the alert."""

from __future__ import annotations

from alertline.clock import ManualClock
from alertline.errors import AuthError, RateLimitedError, TransientError
from alertline.http.metrics import render
from alertline.oncall.watch import ProviderWatch
from alertline.providers.base import ProviderInfo
from tests.engine_harness import EngineHarness, ScriptedProvider, make_config

SECRET = "api-key-9c8b7a6f5e4d"


class WatchedProvider(ScriptedProvider):
    """A scripted provider whose credential check fails while ``check_error`` is set."""

    def __init__(self, name: str, clock: ManualClock) -> None:
        super().__init__(name, clock)
        self.check_error: Exception | None = None
        self.checks = 0

    async def check(self) -> ProviderInfo:
        """Fail with ``check_error``, if set."""
        self.checks += 1
        if self.check_error is not None:
            raise self.check_error
        return ProviderInfo(provider=self.name)


async def test_outage_alert_failover_and_recovery(manual_engine: EngineHarness) -> None:
    clock = manual_engine.clock
    primary, backup = WatchedProvider("primary", clock), WatchedProvider("backup", clock)
    config = make_config(
        providers={"primary": {"type": "simulator"}, "backup": {"type": "simulator"}},
        contacts={"alice": {"phone": "+491701234560"}},
        routes={"leak": {"to": ["alice"], "provider": ["primary", "backup"]},
                "ops-fallback": {"to": ["alice"], "provider": ["primary", "backup"]}},
        watch={"every": "5m", "after": 2, "route": "ops-fallback"})
    engine = await manual_engine.start(config, providers={"primary": primary, "backup": backup})
    watch = ProviderWatch.from_config(engine)
    assert watch is not None
    watch.start()
    await manual_engine.advance(engine, 0)
    assert (primary.checks, backup.checks) == (1, 1)
    assert 'alertline_provider_up{provider="primary"} 1' in render(watch.families())

    primary.check_error = TransientError("primary", f"connection refused ({SECRET})")
    engine.redactor.add(SECRET)
    await manual_engine.advance(engine, 300)
    assert watch.health["primary"].up, "one failed check is not an outage yet"
    await manual_engine.advance(engine, 300)
    assert not watch.health["primary"].up
    assert 'alertline_provider_up{provider="primary"} 0' in render(watch.families())
    [alert_id] = [r.alert.id for r in manual_engine.reports if r.alert.route == "ops-fallback"][:1]
    outage = await engine.report(alert_id)
    assert "Provider primary is down" in outage.alert.message
    assert SECRET not in outage.alert.message
    assert [d.provider for d in outage.deliveries] == ["backup"], "the route avoids it"
    submitted_to_primary = len(primary.batches)

    accepted = await manual_engine.send(engine, route="leak")
    leak = await engine.report(accepted.alert_id)
    assert [d.provider for d in leak.deliveries] == ["backup"], "straight to the next provider"
    assert len(primary.batches) == submitted_to_primary == 0

    await manual_engine.advance(engine, 300)
    assert len([r for r in manual_engine.reports if r.alert.route == "ops-fallback"
                and r.state.value == "accepted"]) == 1, "one alert per outage"

    primary.check_error = None
    await manual_engine.advance(engine, 300)
    assert watch.health["primary"].up
    assert (await engine.report(alert_id)).status.resolved
    accepted = await manual_engine.send(engine, route="leak")
    assert [d.provider for d in (await engine.report(accepted.alert_id)).deliveries] == [
        "primary"]


async def test_rate_limits_count_as_reachable_and_auth_errors_as_down(
        manual_engine: EngineHarness) -> None:
    clock = manual_engine.clock
    busy, locked = WatchedProvider("busy", clock), WatchedProvider("locked", clock)
    config = make_config(providers={"busy": {"type": "simulator"},
                                    "locked": {"type": "simulator"}},
                         watch={"every": "1m", "after": 1})
    engine = await manual_engine.start(config, providers={"busy": busy, "locked": locked})
    busy.check_error = RateLimitedError("busy", "slow down", retry_after=5)
    locked.check_error = AuthError("locked", "wrong password")
    watch = ProviderWatch.from_config(engine)
    assert watch is not None
    await watch.check_all()
    assert (watch.health["busy"].up, watch.health["locked"].up) == (True, False)
    assert watch.to_json()["locked"]["error"] == "locked: wrong password"


async def test_an_outage_outlives_a_restart(manual_engine: EngineHarness) -> None:
    """Down when the daemon stops: after the restart no second alert goes out, and the first
    is resolved when the provider answers again."""
    clock = manual_engine.clock
    primary, backup = WatchedProvider("primary", clock), WatchedProvider("backup", clock)
    config = make_config(
        providers={"primary": {"type": "simulator"}, "backup": {"type": "simulator"}},
        contacts={"alice": {"phone": "+491701234560"}},
        routes={"ops-fallback": {"to": ["alice"], "provider": ["primary", "backup"]}},
        watch={"every": "5m", "after": 2, "route": "ops-fallback"})
    engine = await manual_engine.start(config, providers={"primary": primary, "backup": backup})
    watch = ProviderWatch.from_config(engine)
    assert watch is not None
    primary.check_error = TransientError("primary", "connection refused")
    watch.start()
    await manual_engine.advance(engine, 300)
    assert not watch.health["primary"].up
    alert_id = watch.health["primary"].alert_id
    assert alert_id is not None
    await engine.stop()

    primary, backup = WatchedProvider("primary", clock), WatchedProvider("backup", clock)
    primary.check_error = TransientError("primary", "connection refused")
    engine = await manual_engine.start(config, providers={"primary": primary, "backup": backup})
    watch = ProviderWatch.from_config(engine)
    assert watch is not None
    watch.start()
    await manual_engine.advance(engine, 600)
    assert not watch.health["primary"].up
    assert not primary.healthy, "routes still try it last"
    outages = {r.alert.id for r in manual_engine.reports if r.alert.route == "ops-fallback"}
    assert outages == {alert_id}, "one alert per outage, restart or not"

    primary.check_error = None
    await manual_engine.advance(engine, 300)
    assert watch.health["primary"].up and primary.healthy
    assert (await engine.report(alert_id)).status.resolved
    await engine.stop()

    engine = await manual_engine.start(config, providers={
        "primary": WatchedProvider("primary", clock), "backup": backup})
    watch = ProviderWatch.from_config(engine)
    assert watch is not None
    await watch.check_all()
    assert watch.health["primary"].up, "a recovered outage is not taken up again"
