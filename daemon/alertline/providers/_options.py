"""The transport options every HTTP adapter takes, and the retry policy they configure.

Split from :mod:`alertline.providers._http` (which re-exports every public name here) so the
choke point holds only I/O: this module is pure configuration — voluptuous markers described
once (``timeout``, ``retry_*``, ``rate_limit*``, ``poll_interval``, ``tracking_deadline``) and
the values an adapter reads back from its validated options.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import voluptuous as vol

from alertline.providers.base import RateLimit

if TYPE_CHECKING:
    from alertline.providers.base import Capabilities

DEFAULT_TIMEOUT = 15.0
"""Seconds per HTTP step (connect, send, each read) when an adapter sets no ``timeout``."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a request is retried after a retryable error."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.2

    def delay(self, attempt: int, hint: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if hint is not None:
            return min(max(hint, 0.0), self.max_delay)
        raw = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return float(raw * (1 + random.uniform(-self.jitter, self.jitter)))


_DEFAULT_RETRY = RetryPolicy()
_WEEK = 7 * 86400.0


def transport_options(*, timeout: float = DEFAULT_TIMEOUT, poll_interval: float | None = None,
                      deadline: float | None = None, rate_window: float = 10.0,
                      retried: str = "5xx and connection errors") -> dict[Any, Any]:
    """The option markers every adapter shares, with the adapter's defaults.

    ``poll_interval`` and ``deadline`` are left out when None (a push-only adapter does not poll).
    The deadline is spelt ``tracking_deadline``; ``deadline`` stays accepted as an alias.
    """
    delay = vol.All(vol.Coerce(float), vol.Range(min=0, max=3600))
    options: dict[Any, Any] = {
        vol.Optional("timeout", default=timeout,
                     description="seconds per HTTP step (connect, send, each read); the whole "
                     "exchange, complete answer included, ends after twice this"):
            vol.All(vol.Coerce(float), vol.Range(min=0.01, max=3600)),
        vol.Optional("retry_attempts", default=_DEFAULT_RETRY.attempts,
                     description=f"attempts per request after {retried}"):
            vol.All(vol.Coerce(int), vol.Range(min=1, max=20)),
        vol.Optional("retry_base_delay", default=_DEFAULT_RETRY.base_delay,
                     description="first retry wait in seconds; each further one doubles, "
                     "with ±20 % jitter"): delay,
        vol.Optional("retry_max_delay", default=_DEFAULT_RETRY.max_delay,
                     description="longest retry wait in seconds (also caps a Retry-After)"):
            delay,
    }
    options[vol.Optional("rate_limit_window", default=rate_window,
                         description="seconds a provider that refused for load (429, 503) is "
                         "left alone when it names no Retry-After; doubles with each further "
                         "refusal")] = vol.All(_seconds, vol.Range(min=0.1, max=3600))
    options[vol.Optional("rate_limit", description="client-side pacing: at most `jobs` "
                         "requests per `per` seconds, e.g. {jobs: 1, per: 10s}; the last one "
                         "of each window is kept for high priority")] = {
        vol.Required("jobs"): vol.All(vol.Coerce(int), vol.Range(min=1, max=100_000)),
        vol.Optional("per", default=10.0): vol.All(_seconds, vol.Range(min=0.01, max=86400)),
    }
    if poll_interval is not None:
        options[vol.Optional("poll_interval", default=poll_interval,
                             description="seconds between status polls")] = \
            vol.All(vol.Coerce(float), vol.Range(min=0.01, max=_WEEK))
    if deadline is not None:
        seconds = vol.All(vol.Coerce(float), vol.Range(min=1, max=_WEEK))
        options[vol.Optional("tracking_deadline", default=deadline,
                             description="seconds after which a delivery that is still not "
                             "final counts as expired")] = seconds
        options[vol.Optional("deadline", description="alias of tracking_deadline (wins when "
                             "both are set)")] = seconds
    return options


def _seconds(value: Any) -> float:
    """Seconds from ``10``, ``"10s"``, ``"2m"`` or ``"1h"``."""
    if isinstance(value, bool):
        raise vol.Invalid("expected seconds such as 10 or 10s")
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(value))
    if not match:
        raise vol.Invalid("expected seconds such as 10 or 10s")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def retry_policy(options: Mapping[str, Any]) -> RetryPolicy:
    """The :class:`RetryPolicy` of an adapter's options (a missing one keeps its default)."""
    return RetryPolicy(
        attempts=int(options.get("retry_attempts", _DEFAULT_RETRY.attempts)),
        base_delay=float(options.get("retry_base_delay", _DEFAULT_RETRY.base_delay)),
        max_delay=float(options.get("retry_max_delay", _DEFAULT_RETRY.max_delay)))


def tracking_deadline(options: Mapping[str, Any], default: float) -> float:
    """The configured tracking deadline in seconds: ``deadline`` or ``tracking_deadline``."""
    return float(options.get("deadline", options.get("tracking_deadline", default)))


def tracking_capabilities(capabilities: Capabilities,
                          options: Mapping[str, Any]) -> Capabilities:
    """``capabilities`` with the configured ``poll_interval``, tracking deadline and rate limit
    (``rate_limit_window``, ``rate_limit``)."""
    poll = float(options.get("poll_interval", capabilities.poll_interval))
    pacing = options.get("rate_limit")
    return dataclasses.replace(
        capabilities, poll_interval=poll,
        max_poll_interval=max(capabilities.max_poll_interval, poll),
        tracking_deadline=tracking_deadline(options, capabilities.tracking_deadline),
        rate_window=float(options.get("rate_limit_window", capabilities.rate_window)),
        rate_limit=RateLimit(int(pacing["jobs"]), float(pacing.get("per", 10.0)))
        if isinstance(pacing, Mapping) else capabilities.rate_limit)
