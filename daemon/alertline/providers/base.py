"""The provider contract every adapter implements, and the data that crosses it."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

import httpx
import voluptuous as vol

from alertline.clock import Clock, SystemClock
from alertline.errors import RateLimitedError, TransientError
from alertline.model import Channel, DeliveryState, Priority
from alertline.phone import NumberFormat
from alertline.redact import Redactor


class StatusMode(StrEnum):
    """How a provider tells us what happened to a delivery."""

    POLL = "poll"
    PUSH = "push"
    BOTH = "both"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``jobs`` provider requests in any ``per`` seconds: a limit the dispatcher keeps
    on its own (client-side pacing), so the provider never has to refuse."""

    jobs: int
    per: float


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider can do; the engine plans batches and tracking from it."""

    channels: frozenset[Channel]
    max_recipients: int = 1
    status: StatusMode = StatusMode.POLL
    poll_interval: float = 30.0
    max_poll_interval: float = 600.0
    tracking_deadline: float = 48 * 3600.0
    personalization: bool = False
    scheduling: bool = False
    idempotent_submit: bool = False
    shared_content: bool = False
    number_format: NumberFormat = NumberFormat.E164
    # a refused request (429, 503, "too busy") pauses the provider at least this long (seconds)
    # when the refusal names no Retry-After: the provider's documented rate window
    rate_window: float = 10.0
    rate_limit: RateLimit | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form, for listings and diagnostics."""
        return {
            "channels": sorted(c.value for c in self.channels),
            "max_recipients": self.max_recipients,
            "status": self.status.value,
            "poll_interval": self.poll_interval,
            "tracking_deadline": self.tracking_deadline,
            "personalization": self.personalization,
            "scheduling": self.scheduling,
            "idempotent_submit": self.idempotent_submit,
            "shared_content": self.shared_content,
            "rate_window": self.rate_window,
            **({"rate_limit": {"jobs": self.rate_limit.jobs, "per": self.rate_limit.per}}
               if self.rate_limit is not None else {}),
        }


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One recipient in a batch, with its text already personalised."""

    delivery_id: str
    alert_id: str
    number: str
    text: str
    template: str
    personalization: dict[str, str] = field(default_factory=dict)
    locale: str | None = None
    contact: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """Recipients that share a provider, channel and job settings: one or more provider requests."""

    channel: Channel
    items: tuple[BatchItem, ...]
    priority: Priority = Priority.NORMAL
    sender: str | None = None
    locale: str | None = None
    audio_url: str | None = None
    not_before: datetime | None = None
    expires: datetime | None = None
    blackout_periods: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        """A reference for the whole job: the alert id when the batch holds one alert."""
        ids = sorted({item.alert_id for item in self.items})
        return ids[0] if len(ids) == 1 else f"{ids[0]}+{len(ids) - 1}"


@dataclass(frozen=True, slots=True)
class SubmittedItem:
    """What the provider said about one recipient of a submission."""

    delivery_id: str
    number: str
    provider_message_id: str | None = None
    state: DeliveryState = DeliveryState.SUBMITTED
    provider_status: str | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # merged into the delivery's details


@dataclass(frozen=True, slots=True)
class Submission:
    """One provider request's outcome: the job reference and per-recipient results."""

    provider_ref: str | None
    items: tuple[SubmittedItem, ...]
    submitted_at: datetime
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A delivery's new status, from a poll (by ``delivery_id``) or a push (by provider ids)."""

    state: DeliveryState
    delivery_id: str | None = None
    provider_ref: str | None = None
    provider_message_id: str | None = None
    number: str | None = None
    provider_status: str | None = None
    reason: str | None = None
    at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """This status as JSON (to hand a pushed status to another cluster member)."""
        return {"state": self.state.value, "delivery_id": self.delivery_id,
                "provider_ref": self.provider_ref,
                "provider_message_id": self.provider_message_id, "number": self.number,
                "provider_status": self.provider_status, "reason": self.reason,
                "at": self.at.isoformat() if self.at else None, "details": self.details}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StatusUpdate:
        """The status :meth:`to_json` wrote."""
        at = data.get("at")
        return cls(state=DeliveryState(data["state"]), delivery_id=data.get("delivery_id"),
                   provider_ref=data.get("provider_ref"),
                   provider_message_id=data.get("provider_message_id"),
                   number=data.get("number"), provider_status=data.get("provider_status"),
                   reason=data.get("reason"), at=datetime.fromisoformat(at) if at else None,
                   details=dict(data.get("details") or {}))


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """The answer of a credential check."""

    provider: str
    version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ProviderContext:
    """What the host hands an adapter: time, shared HTTP client, redactor, callback URL."""

    clock: Clock = field(default_factory=SystemClock)
    http: httpx.AsyncClient | None = None
    redactor: Redactor = field(default_factory=Redactor)
    callback_base_url: str | None = None


def is_throttled(err: BaseException | None) -> bool:
    """Whether ``err`` says "not now" for the whole provider: a rate limit (429, Fortytwo's
    "Server too busy") or a 503. Such a refusal pauses the provider instead of failing alerts.

    Part of the contract (not of ``_http``): the adapters raise such errors, the dispatcher
    pauses the provider on them."""
    if isinstance(err, RateLimitedError):
        return True
    return isinstance(err, TransientError) and err.status == 503


class Provider(abc.ABC):
    """Base of every adapter: one provider API, described by its capabilities and option schema."""

    type: ClassVar[str]
    description: ClassVar[str]
    default_capabilities: ClassVar[Capabilities]
    options_schema: ClassVar[dict[Any, Any]] = {}
    alert_options_schema: ClassVar[dict[Any, Any]] = {}
    secret_options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str, options: dict[str, Any], context: ProviderContext) -> None:
        self.name = name
        self.options = options
        self.context = context
        self.capabilities = self.default_capabilities
        # False while the provider watch finds it down: routes then try it last, not first
        self.healthy = True
        for key in self.secret_options:
            value = options.get(key)
            if isinstance(value, str):
                context.redactor.add(value)

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` checked against the adapter's schema (raises ``vol.Invalid``)."""
        result: dict[str, Any] = vol.Schema(cls.options_schema)(options)
        return result

    @classmethod
    def validate_alert_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """An alert's provider-specific ``options`` checked against ``alert_options_schema``."""
        result: dict[str, Any] = vol.Schema(cls.alert_options_schema)(options)
        return result

    @abc.abstractmethod
    async def submit(self, batch: Batch) -> Submission:
        """Send one provider request for ``batch`` (at most ``max_recipients`` items)."""

    async def poll(self, submission: Submission) -> list[StatusUpdate]:
        """Current status of the open items of ``submission`` (push-only providers return [])."""
        return []

    @abc.abstractmethod
    async def check(self) -> ProviderInfo:
        """Verify credentials and reachability; raises AuthError / TransientError."""

    def parse_push(self, payload: Any) -> list[StatusUpdate]:
        """Status updates from a pushed callback payload (``ValidationError`` if malformed)."""
        raise NotImplementedError(f"{self.type} does not receive pushed status")

    async def find_submitted(self, items: list[SubmittedItem],
                             since: datetime) -> list[Submission]:
        """After a crash mid-submission: which of ``items`` (sent after ``since``) the provider
        already has.

        Returns the provider's jobs holding any of them (items it never got appear in none).
        Raises ``NotImplementedError`` when the API cannot tell, a ``TransientError`` when it
        cannot tell now, and another ``ProviderError`` when it could not find out.
        """
        raise NotImplementedError

    def state_at_deadline(self, provider_status: str | None
                          ) -> tuple[DeliveryState, str] | None:
        """The final state and reason of a delivery still open at its tracking deadline, when
        the provider's last status already says what happened (e.g. Retarus ``RUNNING``: sent,
        no notification); None lets it expire."""
        return None

    async def cancel(self, submission: Submission) -> bool:
        """Ask the provider to stop what it has not done yet; False if it cannot."""
        return False

    async def aclose(self) -> None:  # noqa: B027 - optional hook: most adapters own nothing
        """Release connections the adapter owns."""
