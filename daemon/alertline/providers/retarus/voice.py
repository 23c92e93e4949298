"""Retarus Voice API v3 (SOAP document/literal, zeep): text-to-speech and audio calls.

One ``sendJob`` per batch (many recipients, ``${key}`` placeholders personalised by Retarus),
status by polling ``getJobReport`` (or ``getJobReports``); ``getAvailableReports`` (or
``getAvailableJobReports``) lists job ids; ``getVersionInfo`` answers ``check``. The live WSDL
decides the spelling and the namespace. Seed: retarus-voice-soap-v3.txt; PROVIDERS.md section C.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from datetime import datetime, timedelta
from typing import Any, ClassVar

import voluptuous as vol

from alertline.errors import ProviderAnswerError, ValidationError
from alertline.model import Channel
from alertline.phone import NumberFormat, format_number
from alertline.providers._http import (
    retry_policy,
    tracking_capabilities,
)
from alertline.providers.base import (
    Batch,
    BatchItem,
    Capabilities,
    Provider,
    ProviderContext,
    ProviderInfo,
    StatusUpdate,
    Submission,
    SubmittedItem,
)
from alertline.providers.retarus.voice_options import ALERT_OPTIONS, BUNDLED, OPTIONS
from alertline.providers.retarus.voice_soap import SoapEndpoint
from alertline.providers.retarus.voice_wire import (
    JobReport,
    VoiceContent,
    VoiceJob,
    VoiceRecipient,
    digits,
    job_period,
    match_reports,
    parse_job_id,
    parse_job_ids,
    parse_job_report,
    parse_timestamp,
    parse_version,
)

_LOGGER = logging.getLogger(__name__)

class RetarusVoiceProvider(Provider):
    """Retarus Voice API v3 over SOAP: TTS, WAV and URL contents, polled job reports."""

    type = "retarus_voice"
    description = "Retarus Voice API v3 (SOAP): text-to-speech and audio calls"
    default_capabilities = Capabilities(
        channels=frozenset({Channel.VOICE}), max_recipients=100, poll_interval=30.0,
        max_poll_interval=600.0, personalization=True, scheduling=True, shared_content=True)
    secret_options = frozenset({"password"})
    options_schema: ClassVar[dict[Any, Any]] = OPTIONS
    alert_options_schema: ClassVar[dict[Any, Any]] = ALERT_OPTIONS

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """The schema, and: the bundled WSDL only with the service's real namespace."""
        result = super().validate_options(options)
        if result["wsdl_url"] == BUNDLED and not result["wsdl_namespace"]:
            raise vol.Invalid("wsdl_url 'bundled' needs wsdl_namespace (the bundled copy's own "
                              "namespace is a placeholder the service would refuse)",
                              path=["wsdl_namespace"])
        return result

    def __init__(self, name: str, options: dict[str, Any], context: ProviderContext) -> None:
        super().__init__(name, options, context)
        opts = {**self.validate_options(options)}
        self.options = opts
        self.capabilities = dataclasses.replace(
            tracking_capabilities(self.default_capabilities, opts),
            max_recipients=opts["max_recipients"],
            idempotent_submit=opts["duplicate_detection"] is True,
            number_format=NumberFormat(opts["number_format"]))
        wsdl = opts["wsdl_url"] or f"{opts['url']}?wsdl"
        self.endpoint = SoapEndpoint(
            name, opts["url"], None if wsdl == BUNDLED else wsdl,
            http=context.http, redactor=context.redactor, clock=context.clock,
            timeout=opts["timeout"], retry=retry_policy(opts),
            max_bytes=opts["max_response_bytes"], auth_pattern=opts["auth_fault_pattern"],
            duplicate_pattern=opts["duplicate_fault_pattern"], namespace=opts["wsdl_namespace"],
            bundled_names={"reports": opts["list_operation"],
                           "report": opts["report_operation"]})

    def _login(self) -> dict[str, str]:
        return {"username": self.options["username"], "password": self.options["password"]}

    async def submit(self, batch: Batch) -> Submission:
        """Send one ``sendJob`` for every recipient of ``batch``."""
        job = self.build_job(batch)
        answer = await self.endpoint.call("send", idempotent=False,
                                          **self._login(), **job.to_wire())
        job_id = parse_job_id(answer)
        if not job_id:
            raise ProviderAnswerError(self.name, "sendJob answered without a jobId")
        ids = [r.recipient_id for r in job.recipients]
        _LOGGER.info("%s: voice job %s accepted for %d recipient(s)", self.name, job_id, len(ids))
        items = tuple(SubmittedItem(delivery_id=item.delivery_id, number=item.number)
                      for item in batch.items)
        return Submission(provider_ref=job_id, items=items, submitted_at=self.context.clock.now(),
                          data={"job_id": job_id, "recipient_ids": ids,
                                "wsdl": self.endpoint.wsdl_source})

    def build_job(self, batch: Batch) -> VoiceJob:
        """The ``sendJob`` request for ``batch`` (raises ValidationError on unusable input)."""
        if batch.channel is not Channel.VOICE:
            raise ValidationError("channel", f"{self.type} only places voice calls")
        if not batch.items:
            raise ValidationError("to", "no recipients")
        if len(batch.items) > self.capabilities.max_recipients:
            raise ValidationError("to", f"at most {self.capabilities.max_recipients} recipients "
                                  "per job")
        try:
            extra = self.validate_alert_options(dict(batch.options))
        except vol.Invalid as err:
            raise ValidationError(f"options.{err.path[0] if err.path else ''}".rstrip("."),
                                  err.msg) from None
        opts = self.options
        caller_id = extra.get("caller_id") or batch.sender or opts["caller_id"]
        if not caller_id:
            raise ValidationError("sender", "Retarus Voice needs a caller id: set the alert's "
                                  "sender or the provider's caller_id")
        entries = dict(opts["job_options"]) | dict(extra.get("job_options", {}))
        detection = extra.get("duplicate_detection", opts["duplicate_detection"])
        if detection is not None:
            entries["duplicateDetection"] = "true" if detection else "false"
        blackouts = dict.fromkeys([*batch.blackout_periods, *extra.get("blackout_periods", [])])
        return VoiceJob(
            contents=self._contents(batch, extra.get("contents")),
            recipients=tuple(self._recipient(item, extra.get("recipients", {}))
                             for item in batch.items),
            caller_id=caller_id,
            locale=self._locale(batch, extra.get("locale")),
            job_period=extra.get("job_period") or job_period(
                batch.not_before, batch.expires, self.context.clock.now(),
                window=timedelta(seconds=opts["job_window"])),
            blackout_periods=tuple(blackouts),
            cost_center=extra.get("cost_center") or opts["cost_center"],
            reference=extra.get("reference") or batch.reference,
            options=entries)

    def _contents(self, batch: Batch, contents: list[dict[str, Any]] | None
                  ) -> tuple[VoiceContent, ...]:
        if contents is None:
            contents = [{"url": batch.audio_url}] if batch.audio_url else [{"message": True}]
        text_type = f"text/plain; charset={self.options['charset']}"
        audio_type = self.options["audio_content_type"]
        result = []
        for entry in contents:
            if entry.get("wav"):
                result.append(VoiceContent(entry.get("content_type", audio_type),
                                           content=base64.b64decode(entry["wav"])))
            elif entry.get("url"):
                result.append(VoiceContent(entry.get("content_type", audio_type),
                                           url=entry["url"]))
            else:
                text = entry.get("text") or self._template(batch.items)
                result.append(VoiceContent(entry.get("content_type", text_type),
                                           content=self._encode(text)))
        return tuple(result)

    def _template(self, items: tuple[BatchItem, ...]) -> str:
        templates = {item.template for item in items}
        if len(templates) != 1:
            raise ValidationError("message", "recipients of one voice job must share the "
                                  "message template")
        return templates.pop()

    def _encode(self, text: str) -> bytes:
        try:
            return text.encode(self.options["charset"])
        except UnicodeEncodeError:
            raise ValidationError("message", f"cannot be written in charset "
                                  f"{self.options['charset']}") from None

    def _recipient(self, item: BatchItem, settings: dict[str, Any]) -> VoiceRecipient:
        extra: dict[str, Any] = next((v for k, v in settings.items()
                                      if digits(k) == digits(item.number)), {})
        return VoiceRecipient(
            recipient_id=format_number(item.number, self.capabilities.number_format),
            caller_id=extra.get("caller_id"),
            blackout_periods=tuple(extra.get("blackout_periods", ())),
            personalization={**item.personalization, **extra.get("personalization", {})})

    def _locale(self, batch: Batch, override: str | None) -> str:
        item_locales = {item.locale for item in batch.items if item.locale}
        common = item_locales.pop() if len(item_locales) == 1 else None
        locale = override or batch.locale or common or self.options["locale"]
        return str(locale).replace("-", "_")

    async def poll(self, submission: Submission) -> list[StatusUpdate]:
        """Each recipient's status from ``getJobReport``."""
        job_id = submission.provider_ref or submission.data.get("job_id")
        if not job_id:
            return []
        report = await self.job_report(str(job_id))
        sent = submission.data.get("recipient_ids") or [
            format_number(i.number, self.capabilities.number_format) for i in submission.items]
        job = {"job_status": report.status, "job_state": report.state}
        updates = []
        for item, entry in zip(submission.items, match_reports(sent, report.recipients),
                               strict=False):
            if entry is None:
                continue
            state = entry.delivery_state(job_finished=report.finished)
            updates.append(StatusUpdate(
                state=state, delivery_id=item.delivery_id, provider_ref=report.job_id,
                number=item.number, provider_status=entry.status or None,
                reason=entry.status_text if state.final and not state.success else None,
                at=parse_timestamp(entry.last_try), details={**entry.details(), **job}))
        return updates

    async def job_report(self, job_id: str) -> JobReport:
        """``getJobReport``: the job's status and every recipient's report."""
        answer = await self.endpoint.call("report", idempotent=True,
                                          **self._login(), jobId=job_id)
        report = parse_job_report(answer)
        if report is None:
            raise ProviderAnswerError(self.name, f"getJobReport answered no job for {job_id}")
        return report

    async def available_reports(self, *, from_ts: datetime | str | None = None,
                                to_ts: datetime | str | None = None, offset: int | None = None,
                                limit: int | None = None, open: bool | None = None) -> list[str]:
        """``getAvailableReports``: job ids (oldest first), filtered as Retarus documents."""
        if offset is not None and offset < 0:
            raise ValidationError("offset", "must not be negative")
        if limit is not None and limit < 1:
            raise ValidationError("limit", "must be at least 1")
        stamps = [v.isoformat() if isinstance(v, datetime) else v for v in (from_ts, to_ts)]
        answer = await self.endpoint.call(
            "reports", idempotent=True, **self._login(), fromTs=stamps[0],
            toTs=stamps[1], offset=offset, limit=limit, open=open)
        return parse_job_ids(answer)

    async def check(self) -> ProviderInfo:
        """``getVersionInfo``, then (by default) ``getAvailableReports`` to test the login."""
        version = parse_version(await self.endpoint.call("version", idempotent=True))
        if self.options["check_credentials"]:
            await self.available_reports(limit=1)
        return ProviderInfo(provider=self.name, version=version.version, details={
            "versionInfo": version.info, "buildTimestamp": version.build_timestamp,
            "wsdl": self.endpoint.wsdl_source, "namespace": self.endpoint.bound_namespace,
            "operations": dict(self.endpoint.operations), "credentials_checked":
                bool(self.options["check_credentials"])})

    async def aclose(self) -> None:
        """Close the HTTP client if the adapter created it."""
        await self.endpoint.aclose()


ADAPTER = RetarusVoiceProvider
