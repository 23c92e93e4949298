"""The simulator: a provider without an account, deterministic by the number's last digit.

0-7 delivered, 8 failed (busy), 9 never final (it expires at the tracking deadline). Outcomes are
computed from the submission time, so tracking survives restarts like a real provider's would.

Every message it "sends" is logged at INFO and, with ``record: FILE``, appended to that file as a
JSON line, so a dry run shows exactly what people would have received.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import voluptuous as vol

from alertline.errors import TransientError
from alertline.model import Channel, DeliveryState
from alertline.providers.base import (
    Batch,
    Capabilities,
    Provider,
    ProviderContext,
    ProviderInfo,
    StatusUpdate,
    Submission,
    SubmittedItem,
)

_LOGGER = logging.getLogger(__name__)

_seconds = vol.All(vol.Coerce(float), vol.Range(min=0, max=3600))


def record_lines(batch: Batch, at: datetime) -> list[str]:
    """One JSON line per message of ``batch``: what the recipient would have received."""
    return [json.dumps({"at": at.isoformat(), "alert_id": item.alert_id,
                        "delivery_id": item.delivery_id, "number": item.number,
                        "channel": batch.channel.value, "text": item.text},
                       ensure_ascii=False) + "\n"
            for item in batch.items]


def _append(path: Path, lines: list[str]) -> None:
    """Append ``lines`` in one write (blocking: runs in a worker thread)."""
    with path.open("a", encoding="utf-8") as file:
        file.write("".join(lines))


class SimulatorProvider(Provider):
    """SMS and voice without a provider: realistic delays, outcome by the last digit."""

    type = "simulator"
    description = ("Simulated SMS and calls; outcome by the number's last digit "
                   "(0-7 ok, 8 busy, 9 never final)")
    default_capabilities = Capabilities(
        channels=frozenset({Channel.SMS, Channel.VOICE}),
        max_recipients=1000,
        poll_interval=0.5,
        max_poll_interval=2.0,
        tracking_deadline=30.0,
        personalization=False,
        idempotent_submit=True,
    )
    options_schema: ClassVar[dict[Any, Any]] = {
        vol.Optional("sms_delay", default=1.0, description="seconds until an SMS is delivered"):
            _seconds,
        vol.Optional("voice_delay", default=3.0, description="seconds until a call is answered"):
            _seconds,
        vol.Optional("poll_interval", default=0.5, description="seconds between status polls"):
            vol.All(vol.Coerce(float), vol.Range(min=0.01, max=600)),
        vol.Optional("deadline", default=30.0,
                     description="seconds after which an open delivery expires"):
            vol.All(vol.Coerce(float), vol.Range(min=0.1, max=7 * 86400)),
        vol.Optional("record", description="file to append each sent message to, as JSON lines"):
            vol.All(str, vol.Length(min=1)),
    }

    _job_numbers = itertools.count(1)

    def __init__(self, name: str, options: dict[str, Any], context: ProviderContext) -> None:
        super().__init__(name, options, context)
        self.capabilities = Capabilities(
            channels=self.default_capabilities.channels,
            max_recipients=self.default_capabilities.max_recipients,
            poll_interval=float(options.get("poll_interval", 0.5)),
            max_poll_interval=max(2.0, float(options.get("poll_interval", 0.5))),
            tracking_deadline=float(options.get("deadline", 30.0)),
            idempotent_submit=True,
        )
        self.requests = 0
        record = options.get("record")
        self.record_path = Path(record).expanduser() if record else None

    async def submit(self, batch: Batch) -> Submission:
        """Accept every recipient (logged, recorded when asked); outcomes come in later polls."""
        self.requests += 1
        now = self.context.clock.now()
        for item in batch.items:
            _LOGGER.info("%s: %s to %s (alert %s, delivery %s): %s", self.name,
                         batch.channel.value, item.number, item.alert_id, item.delivery_id,
                         item.text)
        if self.record_path is not None:
            try:
                await asyncio.to_thread(_append, self.record_path, record_lines(batch, now))
            except OSError as err:  # a full disk or a missing folder: retried, nothing is lost
                raise TransientError(self.name, f"cannot write the record file "
                                     f"{self.record_path}: {err.strerror or err}") from err
        job = f"SIM-{now:%Y%m%d%H%M%S}-{next(self._job_numbers):06d}"
        items = tuple(
            SubmittedItem(delivery_id=item.delivery_id, number=item.number,
                          provider_message_id=f"{job}-{index}", provider_status="ACCEPTED")
            for index, item in enumerate(batch.items)
        )
        return Submission(provider_ref=job, items=items, submitted_at=now,
                          data={"channel": batch.channel.value})

    async def poll(self, submission: Submission) -> list[StatusUpdate]:
        """Each open item's simulated status at the current time."""
        channel = Channel(submission.data.get("channel", "sms"))
        delay = float(self.options.get("voice_delay" if channel is Channel.VOICE else "sms_delay",
                                       3.0 if channel is Channel.VOICE else 1.0))
        elapsed = (self.context.clock.now() - submission.submitted_at).total_seconds()
        return [self._status(item, channel, elapsed >= delay, submission.submitted_at)
                for item in submission.items]

    def _status(self, item: SubmittedItem, channel: Channel, due: bool,
                submitted_at: datetime) -> StatusUpdate:
        digit = item.number[-1]
        if not due or digit == "9":
            status = "RINGING" if channel is Channel.VOICE else "ACCEPTED"
            return StatusUpdate(state=DeliveryState.SUBMITTED, delivery_id=item.delivery_id,
                                provider_status=status)
        if digit == "8":
            return StatusUpdate(state=DeliveryState.FAILED, delivery_id=item.delivery_id,
                                provider_status="BUSY", reason="busy")
        status = "ANSWERED" if channel is Channel.VOICE else "DELIVERED"
        return StatusUpdate(state=DeliveryState.DELIVERED, delivery_id=item.delivery_id,
                            provider_status=status)

    async def check(self) -> ProviderInfo:
        """Always fine."""
        return ProviderInfo(provider=self.name, version="simulator")


ADAPTER = SimulatorProvider
