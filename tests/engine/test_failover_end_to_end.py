"""A refusal of one provider's own (funds, coverage, an unsupported language) moves the recipient
to the route's next provider (#11.7); with none left it ends with the provider's reason."""

from __future__ import annotations

from typing import Any

from alertline.errors import ProviderRefusedError
from alertline.model import AlertState, DeliveryState
from alertline.providers.base import Provider
from tests.engine_harness import SIM_OPTIONS, EngineHarness, ScriptedProvider, make_config

REFUSAL = ProviderRefusedError("picky", "There was a problem with your job (funds or coverage)",
                               code="-101", status=403)


def config(providers: list[str]) -> Any:
    return make_config(
        providers={"picky": {"type": "simulator"}, "sim": dict(SIM_OPTIONS)},
        routes={"leak": {"to": ["+491701234560"], "channel": "sms", "provider": providers}})


async def test_a_provider_refusal_fails_over_to_the_next_provider(
        manual_engine: EngineHarness) -> None:
    picky = ScriptedProvider("picky", manual_engine.clock, error=REFUSAL)
    backup = manual_engine.simulator()
    providers: dict[str, Provider] = {"picky": picky, "sim": backup}
    engine = await manual_engine.start(config(["picky", "sim"]), providers=providers)
    accepted = await manual_engine.send(engine, route="leak")
    await manual_engine.advance(engine, 2)
    report = await engine.wait_final(accepted.alert_id, timeout=10)
    delivery = report.deliveries[0]
    assert (len(picky.batches), backup.requests) == (1, 1)
    assert (delivery.state, delivery.provider) == (DeliveryState.DELIVERED, "sim")
    assert delivery.details["failover_from"] == "picky"
    assert "funds or coverage" in delivery.details["failover_reason"]
    assert report.state is AlertState.DELIVERED


async def test_a_provider_refusal_without_another_provider_is_rejected_with_its_reason(
        manual_engine: EngineHarness) -> None:
    picky = ScriptedProvider("picky", manual_engine.clock, error=REFUSAL)
    backup = manual_engine.simulator()
    providers: dict[str, Provider] = {"picky": picky, "sim": backup}
    engine = await manual_engine.start(config(["picky"]), providers=providers)
    accepted = await manual_engine.send(engine, route="leak")
    report = await engine.wait_final(accepted.alert_id, timeout=10)
    delivery = report.deliveries[0]
    assert (len(picky.batches), backup.requests) == (1, 0)
    assert delivery.state is DeliveryState.REJECTED
    assert delivery.reason == str(REFUSAL)


async def test_a_connection_failure_an_adapter_did_not_map_fails_over(
        manual_engine: EngineHarness) -> None:
    broken = ScriptedProvider("picky", manual_engine.clock,
                              error=ConnectionResetError(104, "Connection reset by peer"))
    backup = manual_engine.simulator()
    providers: dict[str, Provider] = {"picky": broken, "sim": backup}
    engine = await manual_engine.start(config(["picky", "sim"]), providers=providers)
    accepted = await manual_engine.send(engine, route="leak")
    await manual_engine.advance(engine, 2)
    delivery = (await engine.wait_final(accepted.alert_id, timeout=10)).deliveries[0]
    assert (delivery.state, delivery.provider) == (DeliveryState.DELIVERED, "sim")
    assert "connection failed" in delivery.details["failover_reason"]
