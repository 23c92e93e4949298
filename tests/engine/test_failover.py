"""Failover's decisions: which errors move a delivery to the route's next provider, and how it
ends when none is left."""

from __future__ import annotations

from typing import Any

import pytest

from alertline.clock import ManualClock
from alertline.engine.decisions import Advance, Reroute
from alertline.engine.failover import Failure, next_provider, submission_failed
from alertline.errors import (
    AuthError,
    ProviderRefusedError,
    RateLimitedError,
    RejectedError,
    TransientError,
)
from alertline.model import DeliveryState
from alertline.providers.base import Provider
from alertline.redact import Redactor
from tests.engine.conftest import T0, make_alert, make_delivery
from tests.engine_harness import SIM_OPTIONS, ScriptedProvider, make_config

CONFIG = make_config(
    providers={"first": {"type": "simulator"}, "second": dict(SIM_OPTIONS)},
    routes={"leak": {"to": ["+491701234560"], "channel": "sms", "provider": ["first", "second"]}})
PROVIDERS: dict[str, Provider] = {name: ScriptedProvider(name, ManualClock(T0))
                                  for name in ("first", "second")}


def decide(error: BaseException | None, **delivery: Any) -> Reroute | Advance:
    failure = Failure.of(error, Redactor(["s3cret"]))
    return submission_failed(make_alert(route="leak"), make_delivery(provider="first", **delivery),
                             failure, config=CONFIG, providers=PROVIDERS, now=T0)


@pytest.mark.parametrize("error", [
    AuthError("first", "bad credentials"),
    TransientError("first", "502 from the gateway"),
    RateLimitedError("first", "slow down"),
    ProviderRefusedError("first", "no funds", code="-101", status=403),
    ConnectionResetError("reset"),
])
def test_errors_another_provider_may_not_have_fail_over(error: BaseException) -> None:
    decision = decide(error)
    assert isinstance(decision, Reroute)
    assert (decision.delivery_id, decision.provider, decision.at) == ("al-1-1", "second", T0)


def test_bad_input_is_rejected_where_it_is() -> None:
    assert decide(RejectedError("first", "number invalid", code="12")) == Advance(
        "al-1-1", DeliveryState.REJECTED, T0, {"reason": "first: number invalid [12]"})


def test_a_delivery_fails_once_every_provider_was_tried() -> None:
    decision = decide(TransientError("first", "timeout"), details={"failover_from": "second"})
    assert decision == Advance("al-1-1", DeliveryState.FAILED, T0, {"reason": "first: timeout"})


def test_a_rate_limit_that_outlasted_the_wait_fails_as_rate_limited() -> None:
    decision = decide(RateLimitedError("first", "429"), details={"failover_from": "second"})
    assert decision == Advance("al-1-1", DeliveryState.FAILED, T0, {"reason": "rate limited"})


def test_reasons_are_redacted_and_bugs_named_without_detail() -> None:
    failure = Failure.of(TransientError("first", "token s3cret refused"), Redactor(["s3cret"]))
    assert failure.reason == "first: token **REDACTED** refused"
    bug = Failure.of(KeyError("x"), Redactor([]))
    assert (bug.state, bug.reason, bug.failover) == (DeliveryState.FAILED,
                                                     "internal error: KeyError", False)


def test_the_next_provider_skips_the_ones_tried() -> None:
    alert = make_alert(route="leak")
    assert next_provider(alert, make_delivery(provider="first"), CONFIG, PROVIDERS) == "second"
    assert next_provider(alert, make_delivery(provider="second",
                                              details={"failover_from": "first"}),
                         CONFIG, PROVIDERS) is None
