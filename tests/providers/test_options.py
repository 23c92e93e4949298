"""The transport options every adapter takes and the retry policy they configure
(``providers/_options.py``): what a user writes, what the adapter then does."""

from __future__ import annotations

import random
from typing import Any

import pytest
import voluptuous as vol

from alertline.model import Channel
from alertline.providers._options import (
    DEFAULT_TIMEOUT,
    RetryPolicy,
    retry_policy,
    tracking_capabilities,
    tracking_deadline,
    transport_options,
)
from alertline.providers.base import Capabilities, RateLimit


def test_waits_double_from_the_base_within_the_jitter_and_stop_at_the_cap() -> None:
    policy = RetryPolicy(attempts=8, base_delay=0.5, max_delay=5.0, jitter=0.2)
    random.seed(14)
    for attempt, nominal in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (7, 5.0)]:
        for _ in range(50):
            assert nominal * 0.8 <= policy.delay(attempt) <= nominal * 1.2


def test_a_providers_hint_is_followed_but_capped_and_never_negative() -> None:
    policy = RetryPolicy(max_delay=30.0)
    assert [policy.delay(1, hint) for hint in (12.0, 600.0, -3.0)] == [12.0, 30.0, 0.0]


def test_the_retry_options_make_the_policy_and_missing_ones_keep_the_defaults() -> None:
    assert retry_policy({}) == RetryPolicy()
    assert retry_policy({"retry_attempts": "2", "retry_base_delay": 0.1,
                         "retry_max_delay": 3}) == RetryPolicy(2, 0.1, 3.0)


def schema(**defaults: Any) -> vol.Schema:
    return vol.Schema(transport_options(**defaults))


def test_the_defaults_fill_in_and_only_polling_adapters_get_poll_options() -> None:
    push_only = schema()({})
    assert push_only == {"timeout": DEFAULT_TIMEOUT, "retry_attempts": 4,
                         "retry_base_delay": 0.5, "retry_max_delay": 30.0,
                         "rate_limit_window": 10.0}
    polling = schema(poll_interval=30.0, deadline=3600.0)({})
    assert (polling["poll_interval"], polling["tracking_deadline"]) == (30.0, 3600.0)


@pytest.mark.parametrize(("written", "seconds"), [
    (10, 10.0), ("10s", 10.0), ("2m", 120.0), (" 0.5h ", 1800.0)])
def test_the_rate_limit_settings_take_seconds_with_a_unit(written: Any, seconds: float) -> None:
    options = schema()({"rate_limit_window": written, "rate_limit": {"jobs": 1, "per": written}})
    assert options["rate_limit_window"] == seconds
    assert options["rate_limit"] == {"jobs": 1, "per": seconds}


@pytest.mark.parametrize("bad", [
    {"timeout": 0}, {"retry_attempts": 0}, {"retry_attempts": 21}, {"retry_max_delay": -1},
    {"rate_limit_window": True}, {"rate_limit_window": "soon"}, {"rate_limit": {"per": 10}},
    {"poll_interval": 0},
])
def test_impossible_values_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(vol.Invalid):
        schema(poll_interval=30.0)(bad)


def test_deadline_is_an_alias_of_tracking_deadline_that_wins() -> None:
    assert tracking_deadline({}, 60.0) == 60.0
    assert tracking_deadline({"tracking_deadline": 90}, 60.0) == 90.0
    assert tracking_deadline({"tracking_deadline": 90, "deadline": 120}, 60.0) == 120.0


def test_the_capabilities_take_the_configured_tracking_and_pacing() -> None:
    base = Capabilities(channels=frozenset({Channel.SMS}), poll_interval=30.0,
                        max_poll_interval=600.0, tracking_deadline=3600.0)
    assert tracking_capabilities(base, {}) == base
    tuned = tracking_capabilities(base, {"poll_interval": 900.0, "deadline": 7200.0,
                                         "rate_limit_window": 45.0,
                                         "rate_limit": {"jobs": 2, "per": 10.0}})
    assert (tuned.poll_interval, tuned.max_poll_interval) == (900.0, 900.0)
    assert (tuned.tracking_deadline, tuned.rate_window) == (7200.0, 45.0)
    assert tuned.rate_limit == RateLimit(2, 10.0)
