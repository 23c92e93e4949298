"""Escalation: page contacts step by step until someone acknowledges, plus voice→SMS fallback.

A policy (config ``escalations.<name>``) is a list of steps ``{to, channel, wait}`` that runs
``repeat`` more times after the first pass. An alert naming a policy (or whose route names one)
gets the first step's deliveries at once; every later step is a timer, stored in the store's
``timers`` table in the same transaction as the step before it and scheduled with the engine's
scheduler, so a restart resumes it. Each step adds deliveries to the alert (``Delivery.step`` is
the step's index, ``details["round"]`` the pass). Escalation stops on an acknowledgement (MQTT,
Home Assistant, CLI, or the callee's keypad), on resolve or cancel; when the steps run out the
alert fails with the outcome ``not_acknowledged``. ``AlertStatus.escalation`` (an
:class:`~alertline.progress.EscalationProgress`) shows where it stands and whom it contacted how.

The runner decides and returns decisions; the engine's ledger applies them. It owns only its
timers in the scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from alertline.clock import Clock
from alertline.config.sections import Config
from alertline.engine.decisions import (
    AddDelivery,
    Decision,
    DropTimer,
    Queue,
    SetEscalation,
    SetTimer,
)
from alertline.engine.scheduler import Scheduler
from alertline.errors import ValidationError
from alertline.intake.expand import expand_targets, personalise, provider_for
from alertline.model import Alert, Channel, Delivery, DeliveryState, Recipient
from alertline.progress import EscalationProgress, StepContact
from alertline.providers.base import Provider, StatusUpdate
from alertline.records import AlertRecord

_LOGGER = logging.getLogger(__name__)

TIMER_PREFIX = "escalation:"
DEFAULT_ACK_PROMPT = "Press {digit} to acknowledge."
STEP_CHANNELS: dict[str, tuple[Channel, ...]] = {
    "sms": (Channel.SMS,), "voice": (Channel.VOICE,), "both": (Channel.SMS, Channel.VOICE)}
_UNSUCCESSFUL = (DeliveryState.FAILED, DeliveryState.EXPIRED, DeliveryState.REJECTED)


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """Whom to contact how, and how long to wait for an acknowledgement before the next step."""

    to: tuple[str, ...]
    channels: tuple[Channel, ...]
    wait: float


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """A named, validated escalation policy."""

    name: str
    steps: tuple[EscalationStep, ...]
    repeat: int = 0
    advance_on_failure: bool = False
    ack_digit: str = "1"
    ack_prompt: str = DEFAULT_ACK_PROMPT

    @classmethod
    def from_config(cls, name: str, raw: dict[str, Any]) -> EscalationPolicy:
        """A policy from its validated config entry."""
        steps = tuple(EscalationStep(
            to=tuple(step.get("to") or ()),
            channels=STEP_CHANNELS[step["channel"]] if step.get("channel") else (),
            wait=float(step.get("wait", 300))) for step in raw["steps"])
        return cls(name=name, steps=steps, repeat=int(raw.get("repeat", 0)),
                   advance_on_failure=bool(raw.get("advance_on_failure", False)),
                   ack_digit=str(raw.get("ack_digit", "1")),
                   ack_prompt=str(raw.get("ack_prompt", DEFAULT_ACK_PROMPT)))

    @property
    def positions(self) -> int:
        """How many steps run in all, repeats included."""
        return len(self.steps) * (self.repeat + 1)

    def prompt(self) -> str:
        """The sentence that tells a callee which key acknowledges."""
        return self.ack_prompt.replace("{digit}", self.ack_digit)


def accepts_keypad(provider: Provider, alert: Alert) -> bool:
    """Whether a call through ``provider`` reports the callee's keypress back to us (Fortytwo's
    menu response, when enabled); Exolve's redirect digit and Retarus calls do not."""
    setting = alert.options.get("enable_menu_response",
                                provider.options.get("enable_menu_response"))
    return setting is True


def _round_of(delivery: Delivery) -> Any:
    return delivery.details.get("round")


StepDue = Callable[[str, int], Awaitable[None]]
"""Runs the step at a position of an alert's escalation (the engine applies what it decides)."""
Screen = Callable[[Alert, list[Delivery]], list[Decision]]
"""The policy's screening of new deliveries (allowlist, caps, quiet-hours note)."""


@dataclass(frozen=True, slots=True)
class StepPlan:
    """What a due step decided: the decisions to apply and the deliveries it created."""

    decisions: tuple[Decision, ...]
    created: tuple[Delivery, ...] = ()
    stale: bool = False  # the alert no longer escalates: only its timer is dropped


class EscalationRunner:
    """Decides the escalation of every alert that names a policy, and keeps its step timers."""

    def __init__(self, config: Config, providers: Mapping[str, Provider], clock: Clock,
                 scheduler: Scheduler, *, due: StepDue, screen: Screen) -> None:
        self.config = config
        self.providers = providers
        self.clock = clock
        self.scheduler = scheduler
        self._due = due
        self._screen = screen
        self.policies = {name: EscalationPolicy.from_config(name, raw)
                         for name, raw in (config.escalations or {}).items()}

    def policy_of(self, alert: Alert) -> EscalationPolicy | None:
        """The policy ``alert`` escalates by, if any."""
        return self.policies.get(alert.escalation) if alert.escalation else None

    # -- starting and stepping ---------------------------------------------------------------

    def begin(self, alert: Alert, now: datetime) -> StepPlan | None:
        """For a new alert with a policy: the first step's deliveries (they replace the ones the
        engine planned) and the progress; ValidationError if a step could not be sent."""
        policy = self.policy_of(alert)
        if policy is None:
            return None
        self._check(alert, policy)
        progress = EscalationProgress(policy=policy.name, steps=len(policy.steps),
                                      rounds=policy.repeat + 1, started_at=now)
        created, decisions = self._start_step(alert, progress, existing=0, policy=policy,
                                              position=0, now=now)
        return StepPlan(tuple(decisions), tuple(created))

    def _check(self, alert: Alert, policy: EscalationPolicy) -> None:
        """Every step can be sent: recipients, a provider per channel, personalised texts."""
        for index, step in enumerate(policy.steps):
            where = f"step {index + 1} of escalation {policy.name!r}"
            try:
                recipients = self._recipients(alert, step)
                if not recipients:
                    raise ValidationError("to", "no recipients: give the step 'to' or the "
                                          "alert recipients")
                for channel in step.channels or alert.channels:
                    provider = provider_for(alert, channel, self.config, self.providers)
                    if channel is Channel.VOICE and alert.audio_url:
                        continue
                    text = self._text(alert, channel, provider)
                    for recipient in recipients:
                        personalise(text, recipient.personalization, recipient.number)
            except ValidationError as err:
                if err.code == "nobody_on_call" and index > 0:
                    continue  # a later step's schedule is resolved when that step sends
                raise ValidationError("escalation", f"{where}: {err.reason}") from None

    def _recipients(self, alert: Alert, step: EscalationStep) -> tuple[Recipient, ...]:
        if not step.to:
            return alert.recipients
        known = {recipient.number: recipient for recipient in alert.recipients}
        targets = expand_targets(step.to, self.config, self.clock.now())
        return tuple(known.get(r.number, r) for r in targets)

    def _start_step(self, alert: Alert, progress: EscalationProgress, *, existing: int,
                    policy: EscalationPolicy, position: int,
                    now: datetime) -> tuple[list[Delivery], list[Decision]]:
        """The deliveries of the step at ``position`` (numbered after ``existing`` ones), the
        progress that records them, and the timer of the step after it."""
        round_number, index = divmod(position, len(policy.steps))
        step = policy.steps[index]
        recipients = self._recipients(alert, step)
        channels = step.channels or alert.channels
        created: list[Delivery] = []
        for channel in channels:
            provider = provider_for(alert, channel, self.config, self.providers)
            created += [_new_delivery(alert, existing + len(created) + 1, recipient, channel,
                                      provider=provider, step=index,
                                      details={"round": round_number}, now=now)
                        for recipient in recipients]
        progress = progress.step_started(position, StepContact(
            step=index, round=round_number, at=now,
            to=tuple(r.contact or r.number for r in recipients),
            channels=tuple(c.value for c in channels), deliveries=tuple(d.id for d in created)))
        _LOGGER.info("%s: escalation %s step %d (round %d) to %d recipient(s)", alert.id,
                     policy.name, index + 1, round_number + 1, len(recipients))
        decisions: list[Decision] = [AddDelivery(d) for d in created]
        decisions += self._schedule(alert.id, progress, position + 1,
                                    now + timedelta(seconds=step.wait))
        return created, decisions

    def _schedule(self, alert_id: str, progress: EscalationProgress, position: int,
                  due: datetime) -> list[Decision]:
        """Run the step at ``position`` at ``due``; the timer is stored with the next commit."""
        key = TIMER_PREFIX + alert_id
        self.scheduler.call_at(key, due, self._job(alert_id, position))
        return [SetEscalation(progress.scheduled(due)),
                SetTimer(key, due, {"alert_id": alert_id, "position": position})]

    def _job(self, alert_id: str, position: int) -> Callable[[], Awaitable[None]]:
        return lambda: self._due(alert_id, position)

    def step_due(self, record: AlertRecord | None, alert_id: str, position: int) -> StepPlan | None:
        """The timer of a step fired: its deliveries, or the end of the escalation after the
        last step; None if that step already ran."""
        progress = record.status.escalation if record is not None else None
        if record is None or progress is None or not progress.active:
            return StepPlan((DropTimer(TIMER_PREFIX + alert_id),), stale=True)
        if position <= progress.position:
            return None
        policy = self.policies.get(progress.policy)
        now = self.clock.now()
        if policy is None or position >= policy.positions:
            return StepPlan(tuple(self.stop(record, "not_acknowledged")))
        try:
            created, decisions = self._start_step(
                record.alert, progress, existing=len(record.deliveries), policy=policy,
                position=position, now=now)
        except ValidationError as err:
            if err.code == "nobody_on_call" and position + 1 < policy.positions:
                _LOGGER.warning("%s: escalation step skipped: %s", alert_id, err)
                return StepPlan(tuple(self._schedule(alert_id, progress, position + 1, now)))
            _LOGGER.error("%s: escalation step cannot be sent: %s", alert_id, err)
            return StepPlan(tuple(self.stop(record, "not_acknowledged", error=str(err))))
        decisions += self._screen(record.alert, created)
        return StepPlan(tuple(decisions), tuple(created))

    # -- stopping ----------------------------------------------------------------------------

    def stop(self, record: AlertRecord, outcome: str, *,
             error: str | None = None) -> list[Decision]:
        """End ``record``'s escalation with ``outcome`` (acknowledged, resolved, cancelled,
        not_acknowledged); nothing if it is not escalating."""
        progress = record.status.escalation
        if progress is None or not progress.active:
            return []
        key = TIMER_PREFIX + record.alert.id
        self.scheduler.cancel(key)
        _LOGGER.info("%s: escalation ended: %s", record.alert.id, outcome)
        return [SetEscalation(progress.ended(outcome, self.clock.now(), error=error)),
                DropTimer(key)]

    def keypad(self, record: AlertRecord, delivery: Delivery, update: StatusUpdate) -> bool:
        """Whether a keypress reported for a call is the policy's ``ack_digit`` (it
        acknowledges the alert)."""
        pressed = update.details.get("keypress")
        policy = self.policy_of(record.alert)
        if pressed in (None, "") or policy is None or record.status.acknowledged is not None:
            return False
        if str(pressed).strip() != policy.ack_digit:
            _LOGGER.info("%s: key %s pressed; %s acknowledges", delivery.id, pressed,
                         policy.ack_digit)
            return False
        return True

    # -- deliveries that end without success -------------------------------------------------

    def delivery_ended(self, record: AlertRecord, delivery: Delivery) -> Iterator[Decision]:
        """A delivery reached a final state: fall back to SMS, or advance a failed step. The
        decisions come one by one: each is applied before the next is decided."""
        if delivery.state in (DeliveryState.FAILED, DeliveryState.EXPIRED):
            yield from self._fallback_sms(record, delivery)
        if delivery.state in _UNSUCCESSFUL:
            yield from self._advance_if_failed(record)

    def _fallback_sms(self, record: AlertRecord, voice: Delivery) -> Iterator[Decision]:
        """Route option ``fallback_sms``: a failed call is followed by an SMS to the callee."""
        alert, status = record.alert, record.status
        route = self.config.routes.get(alert.route or "")
        if voice.channel is not Channel.VOICE or route is None or not route.fallback_sms or \
                status.acknowledged or status.cancelled or status.resolved:
            return
        if any(d.channel is Channel.SMS and d.recipient.number == voice.recipient.number and
               d.step == voice.step and _round_of(d) == _round_of(voice)
               for d in record.deliveries.values()):
            return  # this recipient has an SMS of this step already
        try:
            provider = provider_for(alert, Channel.SMS, self.config, self.providers)
            personalise(alert.text_for(Channel.SMS), voice.recipient.personalization,
                        voice.recipient.number)
        except ValidationError as err:
            _LOGGER.warning("%s: no SMS fallback: %s", voice.id, err)
            return
        details = {"fallback_for": voice.id}
        if _round_of(voice) is not None:
            details["round"] = _round_of(voice)
        sms = _new_delivery(alert, len(record.deliveries) + 1, voice.recipient, Channel.SMS,
                            provider=provider, step=voice.step, details=details,
                            now=self.clock.now())
        _LOGGER.info("%s failed (%s); SMS fallback %s", voice.id, voice.reason, sms.id)
        yield AddDelivery(sms)
        yield from self._screen(alert, [sms])
        yield Queue((sms.id,))

    def _advance_if_failed(self, record: AlertRecord) -> Iterator[Decision]:
        """Policy option ``advance_on_failure``: once every delivery of the current step ended
        without success, the next step runs at once."""
        progress = record.status.escalation
        policy = self.policies.get(progress.policy) if progress else None
        if progress is None or not progress.active or policy is None or \
                not policy.advance_on_failure:
            return
        current = [d for d in record.deliveries.values()
                   if d.step == progress.step and _round_of(d) == progress.round]
        if current and all(d.state in _UNSUCCESSFUL for d in current):
            yield from self._schedule(record.alert.id, progress, progress.position + 1,
                                      self.clock.now())

    # -- text and restart --------------------------------------------------------------------

    def text_for(self, alert: Alert, delivery: Delivery) -> str:
        """The text sent to ``delivery``: an escalating call that the callee can acknowledge
        by keypad ends with the policy's prompt naming the key."""
        return self._text(alert, delivery.channel, delivery.provider)

    def _text(self, alert: Alert, channel: Channel, provider_name: str) -> str:
        text = alert.text_for(channel)
        policy = self.policy_of(alert)
        provider = self.providers.get(provider_name)
        if policy is None or channel is not Channel.VOICE or not policy.ack_prompt or \
                provider is None or not accepts_keypad(provider, alert):
            return text
        text = text.rstrip()
        joiner = " " if text.endswith((".", "!", "?")) else ". "
        return f"{text}{joiner}{policy.prompt()}"

    def resume(self, timers: list[tuple[str, datetime, dict[str, Any]]],
               record: Callable[[str], AlertRecord | None], *,
               only: set[str] | None = None) -> list[Decision]:
        """After a restart: schedule the stored step timers of alerts still escalating; the
        timers of the others are dropped. With ``only`` (alerts taken over from another
        daemon), the timers of other alerts are left alone."""
        dropped: list[Decision] = []
        for key, due, data in timers:
            if not key.startswith(TIMER_PREFIX):
                continue
            alert_id = str(data.get("alert_id") or key[len(TIMER_PREFIX):])
            if only is not None and alert_id not in only:
                continue
            position = int(data.get("position", 0))
            found = record(alert_id)
            progress = found.status.escalation if found is not None else None
            if progress is None or not progress.active:
                dropped.append(DropTimer(key))
                continue
            self.scheduler.call_at(key, due, self._job(alert_id, position))
            _LOGGER.info("%s: escalation resumes at %s", alert_id, due.isoformat())
        return dropped


def _new_delivery(alert: Alert, number: int, recipient: Recipient, channel: Channel, *,
                  provider: str, step: int | None, details: dict[str, Any],
                  now: datetime) -> Delivery:
    """The alert's ``number``-th delivery, pending."""
    return Delivery(id=f"{alert.id}-{number}", alert_id=alert.id, recipient=recipient,
                    channel=channel, provider=provider, state=DeliveryState.PENDING,
                    created_at=now, updated_at=now, step=step, details=details)
