"""Retarus SMS for Applications, REST API v1: jobs of up to 3,000 recipients, status by polling.

Seed: seeds/retarus-sms-rest-v1.txt; PROVIDERS.md section A (data centres, status table, limits).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx
import voluptuous as vol

from alertline.errors import (
    ConfigError,
    DuplicateError,
    ProviderAnswerError,
    ProviderError,
    ValidationError,
)
from alertline.model import Channel, DeliveryState
from alertline.phone import NumberFormat
from alertline.providers._http import (
    HttpApi,
    first_present,
    json_object,
    tracking_capabilities,
    transport_options,
)
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
from alertline.providers.retarus import sms_wire as wire
from alertline.providers.retarus.common import sender_validator, short_ref
from alertline.providers.retarus.sms_job import (
    ALERT_OPTIONS,
    OVER_PARTS_OPTION,
    alert_options,
    build_job,
)
from alertline.providers.retarus.sms_reads import StatusReader
from alertline.providers.retarus.status import state_at_deadline
from alertline.providers.sms_parts import OVER_MAX_PARTS

_LOGGER = logging.getLogger(__name__)

SEND_URL = "https://sms4a.eu.retarus.com/rest/v1"
STATUS_URLS = ("https://sms4a.de2.retarus.com/rest/v1", "https://sms4a.de1.retarus.com/rest/v1")
DUPLICATE_WINDOW = timedelta(minutes=10)
DUPLICATE_NOT_FOUND = (
    "sent: Retarus refused the resend as a duplicate of a job it accepted in the last 10 "
    "minutes (409, duplicate detection); that job was not found in its job list, so no "
    "delivery status will follow")

class RetarusSmsProvider(Provider):
    """Retarus SMS for Applications over the REST API v1 (HTTP Basic, JSON)."""

    type = "retarus_sms"
    description = "Retarus SMS for Applications, REST API v1 (jobs of up to 3,000 recipients)"
    default_capabilities = Capabilities(
        channels=frozenset({Channel.SMS}), max_recipients=wire.MAX_RECIPIENTS_PER_JOB,
        poll_interval=30.0, tracking_deadline=49 * 3600.0, scheduling=True,
        idempotent_submit=True, number_format=NumberFormat.E164)
    secret_options = frozenset({"password"})
    options_schema: ClassVar[dict[Any, Any]] = {
        vol.Required("username", description="SMS for Applications user (login id)"): str,
        vol.Required("password", description="password of that user"): str,
        vol.Optional("base_url", default=SEND_URL, description="URL jobs are sent to"): vol.Url(),
        vol.Optional("status_urls", default=list(STATUS_URLS),
                     description="data centres asked for status, in order; 404 = ask the next"):
            vol.All([vol.Url()], vol.Length(min=1)),
        vol.Optional("sender", description="default sender id (src)"): sender_validator,
        **wire.job_settings_schema(defaults=True),
        vol.Optional(OVER_PARTS_OPTION[0], default="send", description=OVER_PARTS_OPTION[1]):
            vol.In(OVER_MAX_PARTS),
        vol.Optional("recipient_refs", default=True,
                     description="send each delivery id as the recipient customerRef"): bool,
        vol.Optional("max_recipients", default=wire.MAX_RECIPIENTS_PER_JOB,
                     description="recipients per job, at most 3000"):
            vol.All(vol.Coerce(int), vol.Range(min=1, max=wire.MAX_RECIPIENTS_PER_JOB)),
        **transport_options(poll_interval=30.0, deadline=49 * 3600.0),
        vol.Optional("recovery_lookup_limit", default=100_000,
                     description="after a crash mid-send, most recent jobs read (every page of "
                     "the listing) to learn which interrupted deliveries Retarus has (0 = off: "
                     "they are resent under duplicate detection, else marked failed)"):
            vol.All(vol.Coerce(int), vol.Range(min=0, max=100_000)),
        vol.Optional("duplicate_lookup_limit", default=50,
                     description="recent jobs read for the job id after a 409 (0 = off: the "
                     "duplicate is settled as sent at once)"):
            vol.All(vol.Coerce(int), vol.Range(min=0, max=wire.LIST_LIMIT_MAX)),
    }
    alert_options_schema: ClassVar[dict[Any, Any]] = ALERT_OPTIONS

    def __init__(self, name: str, options: dict[str, Any], context: ProviderContext) -> None:
        super().__init__(name, options, context)
        try:
            self.settings = self.validate_options(options)
        except vol.Invalid as err:
            raise ConfigError([(".".join(str(p) for p in err.path), err.msg)]) from None
        cfg = self.settings
        self.capabilities = dataclasses.replace(
            tracking_capabilities(self.default_capabilities, cfg),
            max_recipients=cfg["max_recipients"], idempotent_submit=cfg["duplicate_detection"])
        self._own_client = context.http is None
        self._client = context.http or httpx.AsyncClient(
            timeout=cfg["timeout"],
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100))
        common: dict[str, Any] = {
            "client": self._client, "auth": (cfg["username"], cfg["password"]),
            "headers": {"Accept": "application/json"}}
        self._send_api = HttpApi.for_context(name, cfg["base_url"], context, cfg,
                                             reasons=wire.JOB_REASONS, **common)
        self._read_api = HttpApi.for_context(name, cfg["status_urls"][0], context, cfg,
                                             reasons=wire.READ_REASONS, **common)
        self._reads = StatusReader(name, self._read_api, cfg["status_urls"])

    @classmethod
    def validate_alert_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Per-alert options; the Retarus spellings (``validityMin``...) are accepted too."""
        return alert_options(options)

    # ---- sending -------------------------------------------------------------------------

    async def submit(self, batch: Batch) -> Submission:
        """``POST /jobs``: one job, one message per distinct text, every recipient of the batch."""
        now = self.context.clock.now()
        body, refs, sizes = build_job(batch, self.settings, now)
        duplicate_detection = bool(body["options"].get("duplicateDetection"))
        try:
            response = await self._send_api.request(
                "POST", "jobs", json=body, idempotent=duplicate_detection)
        except DuplicateError:
            if not duplicate_detection:
                raise
            return await self._duplicate(batch, body, refs, sizes, now)
        job_id = first_present(json_object(self.name, response), "jobId", "id")
        if not job_id:
            raise ProviderAnswerError(self.name, "job accepted, but the answer has no jobId")
        _LOGGER.debug("%s: job %s accepted for %d recipients", self.name, job_id,
                      len(batch.items))
        items = tuple(SubmittedItem(delivery_id=i.delivery_id, number=i.number,
                                    details=sizes[i.delivery_id]) for i in batch.items)
        return Submission(provider_ref=str(job_id), items=items, submitted_at=now,
                          data=self._submission_data(str(job_id), refs))

    def job_request(self, batch: Batch, now: datetime) -> tuple[dict[str, Any], dict[str, str]]:
        """The JobRequest body for ``batch``, and the custom recipient refs -> delivery ids."""
        body, refs, _ = build_job(batch, self.settings, now)
        return body, refs

    def _submission_data(self, job_id: str | None, refs: dict[str, str]) -> dict[str, Any]:
        data: dict[str, Any] = {"job_id": job_id, "sent_to": self.settings["base_url"]}
        if refs:
            data["refs"] = refs
        return data

    async def _duplicate(self, batch: Batch, body: dict[str, Any], refs: dict[str, str],
                         sizes: dict[str, dict[str, Any]], now: datetime) -> Submission:
        """409 on a resend: Retarus already has this job; find its id, or report the duplicate."""
        wanted = {r.get("customerRef") or r["dst"]
                  for m in body["messages"] for r in m["recipients"]}
        job_id = await self._find_job(wanted, body["options"]["customerRef"], now)
        if job_id is not None:
            _LOGGER.info("%s: duplicate of job %s, already accepted", self.name, job_id)
            items = tuple(SubmittedItem(delivery_id=i.delivery_id, number=i.number,
                                        provider_status="DUPLICATE",
                                        reason=f"already accepted as job {job_id}",
                                        details=sizes[i.delivery_id]) for i in batch.items)
            return Submission(provider_ref=job_id, items=items, submitted_at=now,
                              data=self._submission_data(job_id, refs))
        _LOGGER.warning("%s: duplicate job (409) whose job id could not be found; settled as "
                        "sent", self.name)
        items = tuple(SubmittedItem(delivery_id=i.delivery_id, number=i.number,
                                    state=DeliveryState.SENT, provider_status="DUPLICATE",
                                    reason=DUPLICATE_NOT_FOUND, details=sizes[i.delivery_id])
                      for i in batch.items)
        return Submission(provider_ref=None, items=items, submitted_at=now,
                          data={**self._submission_data(None, refs), "duplicate": True})

    async def _find_job(self, wanted: set[str], job_ref: str, sent: datetime) -> str | None:
        """The id of the job holding exactly the recipient refs ``wanted``, if found cheaply.

        Looks at jobs received around ``sent`` first, then in the whole 10-minute duplicate
        window, over every page; skips listed jobs whose customerRef differs (when the listing
        shows it) and reads at most ``duplicate_lookup_limit`` recipient reports.
        """
        budget = self.settings["duplicate_lookup_limit"]
        until = self.context.clock.now() + timedelta(minutes=1)
        checked: set[str] = set()
        for since in (sent - timedelta(minutes=1), sent - DUPLICATE_WINDOW):
            for url in self.settings["status_urls"]:
                try:
                    async for job_id, ref in self._reads.all_pages(since, until, url):
                        if budget <= 0:
                            return None
                        if job_id in checked or ref not in (None, job_ref):
                            continue
                        checked.add(job_id)
                        budget -= 1
                        reports = await self._reads.recipient_reports(job_id, [url]) or []
                        if {r.customer_ref or r.dst for r in reports} == wanted:
                            return job_id
                except ProviderError as err:
                    _LOGGER.info("%s: job lookup at %s failed: %s", self.name, url,
                                 self.context.redactor.text(str(err)))
        return None

    async def find_submitted(self, items: list[SubmittedItem],
                             since: datetime) -> list[Submission]:
        """After a crash mid-submission: the jobs (since ``since``) holding any of ``items``.

        Each delivery id was sent as its recipient's customerRef (shortened to 64 characters),
        so the recipient reports of the jobs listed since then show which deliveries Retarus
        has. Every page of the listing is read (1,000 jobs a page), in every status data
        centre, until all are found; at most ``recovery_lookup_limit`` jobs. Without recipient
        refs it cannot tell.
        """
        budget = self.settings["recovery_lookup_limit"]
        if not self.settings["recipient_refs"] or budget <= 0:
            raise NotImplementedError
        wanted = {short_ref(item.delivery_id): item for item in items}
        found: dict[str, list[SubmittedItem]] = {}
        until = self.context.clock.now() + timedelta(minutes=1)
        since = max(since, until - timedelta(days=wire.LIST_RANGE_DAYS))
        read = 0
        for url in self.settings["status_urls"]:
            async for job_id, _ in self._reads.all_pages(since, until, url):
                if not wanted:
                    break
                read += 1
                if read > budget:
                    raise ProviderAnswerError(self.name, f"more than {budget} jobs since "
                                              f"{since:%H:%M}: too many to look through for "
                                              "interrupted deliveries")
                for report in await self._reads.recipient_reports(job_id, [url]) or []:
                    item = wanted.pop(report.customer_ref or "", None)
                    if item is not None:
                        found.setdefault(job_id, []).append(
                            SubmittedItem(delivery_id=item.delivery_id, number=item.number,
                                          provider_status="RECOVERED"))
        return [Submission(provider_ref=job_id, items=tuple(job_items), submitted_at=since,
                           data=self._submission_data(job_id, {}))
                for job_id, job_items in found.items()]

    # ---- status --------------------------------------------------------------------------

    async def poll(self, submission: Submission) -> list[StatusUpdate]:
        """``GET /sms?jobId=`` (de2, then de1): each reported recipient's normalised status."""
        if not submission.provider_ref:
            return []
        reports = await self.recipient_reports(submission.provider_ref)
        if reports is None:
            _LOGGER.info("%s: job %s unknown in every data centre", self.name,
                         submission.provider_ref)
            return []
        refs: dict[str, str] = dict(submission.data.get("refs") or {})
        return [wire.status_update(item, submission.provider_ref, report)
                for item, report in wire.match_reports(submission.items, refs, reports)]

    async def recipient_reports(self, job_id: str) -> list[wire.RecipientReport] | None:
        """``GET /sms?jobId=``: per-recipient reports; None if no data centre knows the job."""
        return await self._reads.recipient_reports(job_id)

    async def job_report(self, job_id: str) -> wire.JobReport | None:
        """``GET /jobs/{jobId}``: the job report; None if no data centre knows the job."""
        return await self._reads.job_report(job_id)

    async def list_jobs(self, from_ts: datetime, to_ts: datetime, *, open: bool | None = None,
                        limit: int = 100, offset: int = 0,
                        base_url: str | None = None) -> list[str]:
        """``GET /jobs``: job ids in [from_ts, to_ts] (every status data centre unless given)."""
        if to_ts <= from_ts:
            raise ValidationError("to_ts", "must be after from_ts")
        if to_ts - from_ts > timedelta(days=wire.LIST_RANGE_DAYS):
            raise ValidationError("from_ts", "at most 30 days before to_ts")
        if not 0 < limit <= wire.LIST_LIMIT_MAX or offset < 0:
            raise ValidationError("limit", "limit must be 1..1000 and offset >= 0")
        urls = [base_url] if base_url else self.settings["status_urls"]
        return list(await self._reads.list_entries(from_ts, to_ts, open, limit=limit,
                                                   offset=offset, urls=urls))

    async def iter_jobs(self, from_ts: datetime, to_ts: datetime, *, open: bool | None = None,
                        page_size: int = 100) -> AsyncIterator[str]:
        """Every job id in the range, page by page, from every status data centre."""
        for url in self.settings["status_urls"]:
            offset = 0
            while True:
                page = await self.list_jobs(from_ts, to_ts, open=open, limit=page_size,
                                            offset=offset, base_url=url)
                for job_id in page:
                    yield job_id
                if len(page) < page_size:
                    break
                offset += page_size

    async def version(self) -> dict[str, Any]:
        """``GET /version``: the service's version information."""
        return await self._reads.version()

    async def check(self) -> ProviderInfo:
        """Credentials and reachability, through ``GET /version``."""
        info = await self.version()
        return ProviderInfo(provider=self.name, version=wire.version_text(info), details=info)

    def state_at_deadline(self, provider_status: str | None
                          ) -> tuple[DeliveryState, str] | None:
        """``RUNNING`` at the tracking deadline ends as sent (the seed's "SMS was sent, but no
        delivery notification was received"), not expired."""
        return state_at_deadline(provider_status)

    async def aclose(self) -> None:
        """Close the HTTP client if the adapter created it."""
        if self._own_client:
            await self._client.aclose()


ADAPTER = RetarusSmsProvider
