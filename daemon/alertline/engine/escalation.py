"""Escalation: page contacts step by step until someone acknowledges, plus voice→SMS fallback.

A policy (config ``escalations.<name>``) is a list of steps ``{to, channel, wait}`` that runs
``repeat`` more times after the first pass. An alert naming a policy (or whose route names one)
gets the first step's deliveries at once; every later step is a timer, stored in the store's
``timers`` table in the same transaction as the step before it and scheduled with the engine's
scheduler, so a restart resumes it. Each step adds deliveries to the alert (``Delivery.step`` is
the step's index, ``details["round"]`` the pass). Escalation stops on an acknowledgement (MQTT,
Home Assistant, CLI, or the callee's keypad), on resolve or cancel; when the steps run out the
alert fails with the outcome ``not_acknowledged``. ``AlertStatus.escalation`` shows where it
stands and whom it contacted how.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from alertline.errors import ValidationError
from alertline.intake.expand import expand_targets, personalise, provider_for
from alertline.model import Alert, Channel, Delivery, DeliveryState, Recipient
from alertline.providers.base import Provider, StatusUpdate
from alertline.store.sqlite import Phase, Store

if TYPE_CHECKING:
    from alertline.engine.core import Engine
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


class EscalationRunner:
    """Runs the escalation of every alert that names a policy (a part of the engine)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.policies = {name: EscalationPolicy.from_config(name, raw)
                         for name, raw in (engine.config.escalations or {}).items()}

    def policy_of(self, alert: Alert) -> EscalationPolicy | None:
        """The policy ``alert`` escalates by, if any."""
        return self.policies.get(alert.escalation) if alert.escalation else None

    # -- starting and stepping ---------------------------------------------------------------

    def begin(self, record: AlertRecord) -> None:
        """For a new alert with a policy: replace the deliveries the engine planned by the first
        step's and schedule the next step; ValidationError if a step could not be sent."""
        policy = self.policy_of(record.alert)
        if policy is None:
            return
        self._check(record.alert, policy)
        record.deliveries.clear()
        record.phases.clear()
        now = self.engine.clock.now()
        record.status = dataclasses.replace(record.status, escalation={
            "policy": policy.name, "active": True, "position": -1, "steps": len(policy.steps),
            "rounds": policy.repeat + 1, "started_at": now.isoformat(), "contacted": [],
            "outcome": None})
        self._start_step(record, policy, 0, now)

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
                    provider = provider_for(alert, channel, self.engine.config,
                                            self.engine.providers)
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
        targets = expand_targets(step.to, self.engine.config, self.engine.clock.now())
        return tuple(known.get(r.number, r) for r in targets)

    def _start_step(self, record: AlertRecord, policy: EscalationPolicy, position: int,
                    now: datetime) -> list[Delivery]:
        """Add the deliveries of the step at ``position`` and schedule the one after it."""
        alert = record.alert
        round_number, index = divmod(position, len(policy.steps))
        step = policy.steps[index]
        recipients = self._recipients(alert, step)
        channels = step.channels or alert.channels
        created = []
        for channel in channels:
            provider = provider_for(alert, channel, self.engine.config, self.engine.providers)
            created += [self._add(record, recipient, channel, provider=provider, step=index,
                                  details={"round": round_number}, now=now)
                        for recipient in recipients]
        state = dict(record.status.escalation or {})
        state.update(position=position, step=index, round=round_number,
                     step_started_at=now.isoformat(), contacted=[*state.get("contacted", []), {
                         "step": index, "round": round_number, "at": now.isoformat(),
                         "to": [r.contact or r.number for r in recipients],
                         "channels": [c.value for c in channels],
                         "deliveries": [d.id for d in created]}])
        record.status = dataclasses.replace(record.status, escalation=state)
        _LOGGER.info("%s: escalation %s step %d (round %d) to %d recipient(s)", alert.id,
                     policy.name, index + 1, round_number + 1, len(recipients))
        self._schedule(record, position + 1, now + timedelta(seconds=step.wait))
        return created

    def _add(self, record: AlertRecord, recipient: Recipient, channel: Channel, *,
             provider: str, step: int | None, details: dict[str, Any],
             now: datetime) -> Delivery:
        alert = record.alert
        delivery = Delivery(
            id=f"{alert.id}-{len(record.deliveries) + 1}", alert_id=alert.id,
            recipient=recipient, channel=channel, provider=provider,
            state=DeliveryState.PENDING, created_at=now, updated_at=now, step=step,
            details=details)
        record.deliveries[delivery.id] = delivery
        record.phases[delivery.id] = (Phase.QUEUED, None)
        return delivery

    def _schedule(self, record: AlertRecord, position: int, due: datetime) -> None:
        """Run the step at ``position`` at ``due`` (stored with the next commit)."""
        alert_id = record.alert.id
        state = dict(record.status.escalation or {})
        state["next_at"] = due.isoformat()
        record.status = dataclasses.replace(record.status, escalation=state)
        key = TIMER_PREFIX + alert_id
        self.engine.scheduler.call_at(key, due, self._job(alert_id, position))
        self.engine.pending_ops.append(
            Store.op_set_timer(key, due, {"alert_id": alert_id, "position": position}))

    def _job(self, alert_id: str, position: int) -> Callable[[], Awaitable[None]]:
        return lambda: self._run(alert_id, position)

    async def _run(self, alert_id: str, position: int) -> None:
        """The timer of a step: add its deliveries, or end the escalation after the last."""
        engine = self.engine
        record = engine.record(alert_id)
        state = record.status.escalation if record is not None else None
        if record is None or not state or not state.get("active"):
            engine.pending_ops.append(Store.op_delete_timer(TIMER_PREFIX + alert_id))
            await engine._save([])
            return
        if position <= int(state.get("position", -1)):
            return  # this step already ran
        policy = self.policies.get(str(state.get("policy")))
        now = engine.clock.now()
        created: list[Delivery] = []
        if policy is None or position >= policy.positions:
            self.stop(record, "not_acknowledged")
        else:
            try:
                created = self._start_step(record, policy, position, now)
            except ValidationError as err:
                if err.code == "nobody_on_call" and position + 1 < policy.positions:
                    _LOGGER.warning("%s: escalation step skipped: %s", alert_id, err)
                    self._schedule(record, position + 1, now)  # on to the next step now
                else:
                    _LOGGER.error("%s: escalation step cannot be sent: %s", alert_id, err)
                    self.stop(record, "not_acknowledged", error=str(err))
            engine.policy.screen(record, created)
        await engine._save([alert_id])
        await engine._emit(record)
        if created:
            engine._queue(record, [record.deliveries[d.id] for d in created])

    # -- stopping ----------------------------------------------------------------------------

    def stop(self, record: AlertRecord, outcome: str, *, error: str | None = None) -> None:
        """End ``record``'s escalation with ``outcome`` (acknowledged, resolved, cancelled,
        not_acknowledged); its timer is dropped with the next commit."""
        state = record.status.escalation
        if not state or not state.get("active"):
            return
        ended = {**state, "active": False, "outcome": outcome, "next_at": None,
                 "ended_at": self.engine.clock.now().isoformat()}
        if error:
            ended["error"] = error
        record.status = dataclasses.replace(record.status, escalation=ended)
        key = TIMER_PREFIX + record.alert.id
        self.engine.scheduler.cancel(key)
        self.engine.pending_ops.append(Store.op_delete_timer(key))
        _LOGGER.info("%s: escalation ended: %s", record.alert.id, outcome)

    async def keypad(self, record: AlertRecord, delivery: Delivery,
                     update: StatusUpdate) -> None:
        """A keypress reported for a call: the policy's ``ack_digit`` acknowledges the alert."""
        pressed = update.details.get("keypress")
        policy = self.policy_of(record.alert)
        if pressed in (None, "") or policy is None or record.status.acknowledged is not None:
            return
        if str(pressed).strip() != policy.ack_digit:
            _LOGGER.info("%s: key %s pressed; %s acknowledges", delivery.id, pressed,
                         policy.ack_digit)
            return
        await self.engine.ack(record.alert.id, via="keypad",
                              by=delivery.recipient.contact or delivery.recipient.number)

    # -- deliveries that end without success -------------------------------------------------

    def delivery_ended(self, record: AlertRecord, delivery: Delivery) -> None:
        """A delivery reached a final state: fall back to SMS, or advance a failed step."""
        if delivery.state in (DeliveryState.FAILED, DeliveryState.EXPIRED):
            self._fallback_sms(record, delivery)
        if delivery.state in _UNSUCCESSFUL:
            self._advance_if_failed(record)

    def _fallback_sms(self, record: AlertRecord, voice: Delivery) -> None:
        """Route option ``fallback_sms``: a failed call is followed by an SMS to the callee."""
        alert, status = record.alert, record.status
        route = self.engine.config.routes.get(alert.route or "")
        if voice.channel is not Channel.VOICE or route is None or not route.fallback_sms or \
                status.acknowledged or status.cancelled or status.resolved:
            return
        if any(d.channel is Channel.SMS and d.recipient.number == voice.recipient.number and
               d.step == voice.step and _round_of(d) == _round_of(voice)
               for d in record.deliveries.values()):
            return  # this recipient has an SMS of this step already
        try:
            provider = provider_for(alert, Channel.SMS, self.engine.config, self.engine.providers)
            personalise(alert.text_for(Channel.SMS), voice.recipient.personalization,
                        voice.recipient.number)
        except ValidationError as err:
            _LOGGER.warning("%s: no SMS fallback: %s", voice.id, err)
            return
        details = {"fallback_for": voice.id}
        if _round_of(voice) is not None:
            details["round"] = _round_of(voice)
        sms = self._add(record, voice.recipient, Channel.SMS, provider=provider,
                        step=voice.step, details=details, now=self.engine.clock.now())
        _LOGGER.info("%s failed (%s); SMS fallback %s", voice.id, voice.reason, sms.id)
        self.engine.policy.screen(record, [sms])
        self.engine._queue(record, [record.deliveries[sms.id]])

    def _advance_if_failed(self, record: AlertRecord) -> None:
        """Policy option ``advance_on_failure``: once every delivery of the current step ended
        without success, the next step runs at once."""
        state = record.status.escalation
        policy = self.policies.get(str(state.get("policy"))) if state else None
        if not state or not state.get("active") or policy is None or \
                not policy.advance_on_failure:
            return
        current = [d for d in record.deliveries.values()
                   if d.step == state.get("step") and _round_of(d) == state.get("round")]
        if current and all(d.state in _UNSUCCESSFUL for d in current):
            self._schedule(record, int(state["position"]) + 1, self.engine.clock.now())

    # -- text and restart --------------------------------------------------------------------

    def text_for(self, alert: Alert, delivery: Delivery) -> str:
        """The text sent to ``delivery``: an escalating call that the callee can acknowledge
        by keypad ends with the policy's prompt naming the key."""
        return self._text(alert, delivery.channel, delivery.provider)

    def _text(self, alert: Alert, channel: Channel, provider_name: str) -> str:
        text = alert.text_for(channel)
        policy = self.policy_of(alert)
        provider = self.engine.providers.get(provider_name)
        if policy is None or channel is not Channel.VOICE or not policy.ack_prompt or \
                provider is None or not accepts_keypad(provider, alert):
            return text
        text = text.rstrip()
        joiner = " " if text.endswith((".", "!", "?")) else ". "
        return f"{text}{joiner}{policy.prompt()}"

    def resume(self, timers: list[tuple[str, datetime, dict[str, Any]]]) -> None:
        """After a restart: schedule the stored step timers of alerts still escalating."""
        for key, due, data in timers:
            if not key.startswith(TIMER_PREFIX):
                continue
            alert_id = str(data.get("alert_id") or key[len(TIMER_PREFIX):])
            position = int(data.get("position", 0))
            record = self.engine.record(alert_id)
            state = record.status.escalation if record is not None else None
            if record is None or not state or not state.get("active"):
                self.engine.pending_ops.append(Store.op_delete_timer(key))
                continue
            self.engine.scheduler.call_at(key, due, self._job(alert_id, position))
            _LOGGER.info("%s: escalation resumes at %s", alert_id, due.isoformat())
