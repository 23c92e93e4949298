"""Retarus SMS for Applications, HTTP Simple interface: ``POST /sms`` and ``GET /reports``.

Seed: retarus-sms-http.txt; PROVIDERS.md section B. The seed's ``POST /sms`` sends "to a single
destination", so every request carries one recipient. Credentials are the ``user``/``pass``
parameters of every call; ``GET /reports`` takes them in the query string, so request URLs are
never logged by this module, and httpx's own request log lines are scrubbed by the shared filter
of :mod:`._http` (``pass=`` always, ``user=`` registered below). Answer bodies are not
documented: they are parsed tolerantly (plain text or JSON) by :mod:`._retarus_sms_http_wire`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, ClassVar

import httpx
import voluptuous as vol

from alertline.errors import ValidationError
from alertline.model import Channel, DeliveryState, Priority
from alertline.phone import NumberFormat, format_number
from alertline.providers._http import (
    HttpApi,
    default_error_message,
    mask_query_params,
    tracking_capabilities,
    transport_options,
)
from alertline.providers.base import (
    Batch,
    BatchItem,
    Capabilities,
    Provider,
    ProviderContext,
    ProviderInfo,
    StatusMode,
    StatusUpdate,
    Submission,
    SubmittedItem,
)
from alertline.providers.retarus.common import check_sender, one_of, sender_validator, short_ref
from alertline.providers.retarus.sms_http_wire import (
    DN_STYLES,
    ERROR_REASONS,
    REFERENCE_MAX,
    Report,
    check_reference,
    parse_job_id,
    parse_report,
    reference_validator,
)
from alertline.providers.retarus.status import normalise, state_at_deadline
from alertline.providers.sms_parts import OVER_MAX_PARTS, best_encoding, fit_text
from alertline.redact import MASK

_LOGGER = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://sms4a.retarus.com/httpsimple/v1"
# syntactically like a Retarus job id, but never issued: check() asks for its report
DEFAULT_CHECK_JOB_ID = "J.20000101-000000.000-000000000000000000"
NOT_FOUND_REASON = "job not known to the provider (yet)"

mask_query_params("user")  # GET /reports carries the login id in its URL: keep it out of logs

_qos = one_of("normal", "express")
_billcode = vol.All(str, vol.Length(max=70))


class RetarusSmsHttpProvider(Provider):
    """Retarus SMS over the HTTP Simple interface: one SMS per request, status by polling."""

    type = "retarus_sms_http"
    description = ("Retarus SMS for Applications, HTTP Simple interface (user/pass parameters, "
                   "one recipient per request, status polled with GET /reports)")
    default_capabilities = Capabilities(
        channels=frozenset({Channel.SMS}),
        max_recipients=1,
        status=StatusMode.POLL,
        poll_interval=15.0,
        max_poll_interval=600.0,
        tracking_deadline=48 * 3600.0,
    )
    options_schema: ClassVar[dict[Any, Any]] = {
        vol.Required("username", description="Retarus API login ID (sent as 'user')"): str,
        vol.Required("password", description="Retarus API password (sent as 'pass')"): str,
        vol.Optional("base_url", default=DEFAULT_BASE_URL,
                     description="interface base URL, including /httpsimple/v1"): vol.Url(),
        vol.Optional("sender", description="sender id ('src'): up to 20 digits with optional "
                     "leading +, or up to 11 letters, digits, spaces and punctuation"):
            sender_validator,
        vol.Optional("qos", default="normal",
                     description="priority ('qos') of normal alerts: normal or express"): _qos,
        vol.Optional("express_for_high_priority", default=True,
                     description="send high-priority alerts with qos=express"): bool,
        vol.Optional("delivery_notification", default=False,
                     description="request a delivery notification ('dn'; extra fee): success "
                     "becomes DONE SUC_FIN instead of DONE SUC_ACC"): bool,
        vol.Optional("dn_values", default="true/false",
                     description="how 'dn' is spelt on the wire: " + ", ".join(DN_STYLES)):
            vol.In(list(DN_STYLES)),
        vol.Optional("billcode", description="billing information ('bc'), max. 70 characters"):
            _billcode,
        vol.Optional("reference", description="fixed reference ('ref') for every SMS, max. 70 "
                     "characters (192 if US-ASCII)"): reference_validator,
        vol.Optional("reference_alert_id", default=True,
                     description="without a reference, send the alert id as 'ref'"): bool,
        vol.Optional("param_style", default="form",
                     description="how parameters of POST /sms travel: form (urlencoded body), "
                     "multipart (multipart/form-data body) or query (URL)"):
            vol.In(["form", "multipart", "query"]),
        vol.Optional("number_format", default="e164",
                     description="'dst' format: e164 (+4917...) or digits (4917...)"):
            vol.In([f.value for f in NumberFormat]),
        vol.Optional("max_parts", description="most SMS parts a text may need (the interface "
                     "has no such parameter: checked here); none = no limit"):
            vol.All(vol.Coerce(int), vol.Range(min=1, max=20)),
        vol.Optional("over_max_parts", default="send",
                     description="a text needing more than max_parts parts: send (whole), cut "
                     "(ending in '...'/'…') or reject"): vol.In(OVER_MAX_PARTS),
        vol.Optional("check_job_id", default=DEFAULT_CHECK_JOB_ID,
                     description="never-issued job id whose report check() asks for"): str,
        **transport_options(poll_interval=15.0, deadline=48 * 3600.0),
    }
    alert_options_schema: ClassVar[dict[Any, Any]] = {
        vol.Optional("qos", description="normal or express for this alert"): _qos,
        vol.Optional("delivery_notification", description="request a delivery notification"):
            bool,
        vol.Optional("billcode", description="billing information ('bc') for this alert"):
            _billcode,
        vol.Optional("reference", description="reference ('ref') for this alert"):
            reference_validator,
    }
    secret_options: ClassVar[frozenset[str]] = frozenset({"password"})

    def __init__(self, name: str, options: dict[str, Any], context: ProviderContext) -> None:
        super().__init__(name, options, context)
        self.settings: dict[str, Any] = vol.Schema(
            self.options_schema, extra=vol.ALLOW_EXTRA)(options)
        self.capabilities = dataclasses.replace(
            tracking_capabilities(self.default_capabilities, self.settings),
            number_format=NumberFormat(self.settings["number_format"]))
        self._user: str = self.settings["username"]
        self._password: str = self.settings["password"]
        self._api = HttpApi.for_context(
            name, self.settings["base_url"], context, self.settings,
            describe_error=self._describe_error, reasons=ERROR_REASONS)

    async def submit(self, batch: Batch) -> Submission:
        """Send one SMS (``POST /sms``); the answer's job id is tracked with ``GET /reports``."""
        if batch.channel is not Channel.SMS:
            raise ValidationError("channel", f"{self.type} sends SMS only")
        if len(batch.items) != 1:
            raise ValidationError("to", f"{self.type} sends to one destination per request, "
                                  f"got {len(batch.items)}")
        item = batch.items[0]
        params, notify, size = self._sms_params(batch, item)
        response = await self._api.request(
            "POST", "sms", expected=(200, 201), **self._encode(params))
        job_id = parse_job_id(self.name, response.text, self._scrub)
        _LOGGER.debug("%s: SMS for delivery %s accepted as job %s (HTTP %d)",
                      self.name, item.delivery_id, job_id, response.status_code)
        return Submission(
            provider_ref=job_id,
            items=(SubmittedItem(delivery_id=item.delivery_id, number=item.number,
                                 provider_message_id=job_id, details=size),),
            submitted_at=self.context.clock.now(),
            data={"job_id": job_id, "delivery_notification": notify},
        )

    async def poll(self, submission: Submission) -> list[StatusUpdate]:
        """The current report of each open job (``GET /reports?jobid=``)."""
        updates: list[StatusUpdate] = []
        for item in submission.items:
            job_id = item.provider_message_id or submission.provider_ref
            if item.state.final or not job_id:
                continue
            report = await self._report(job_id)
            updates.append(self._update(item, job_id, report))
        return updates

    async def check(self) -> ProviderInfo:
        """Probe the credentials with a report request for a never-issued job id.

        The interface has no version call. 401 raises :class:`AuthError`; 404, 400 or any 200
        answer means the credentials were accepted.
        """
        response = await self._api.request(
            "GET", "reports", expected=(200, 400, 404),
            params=self._with_credentials({"jobid": self.settings["check_job_id"]}))
        _LOGGER.debug("%s: credential check answered HTTP %d", self.name, response.status_code)
        return ProviderInfo(provider=self.name, version=None, details={
            "interface": "HTTP Simple v1", "probe": "GET /reports",
            "http_status": response.status_code})

    def state_at_deadline(self, provider_status: str | None
                          ) -> tuple[DeliveryState, str] | None:
        """``RUNNING`` at the tracking deadline ends as sent (the seed's "SMS was sent, but no
        delivery notification was received"), not expired."""
        return state_at_deadline(provider_status)

    async def aclose(self) -> None:
        """Close the HTTP client if the adapter created it."""
        await self._api.aclose()

    # --- request building ------------------------------------------------------------------
    def _sms_params(self, batch: Batch, item: BatchItem
                    ) -> tuple[dict[str, str], bool, dict[str, Any]]:
        """The wire parameters of ``POST /sms``, whether a delivery notification is asked, and
        the text's size (encoding, parts): the interface has no encoding parameter, so the
        text goes as it is and is counted in the encoding it needs (GSM-7, else UCS-2)."""
        try:
            per_alert = self.validate_alert_options(dict(batch.options))
        except vol.Invalid as err:
            path = ".".join(str(p) for p in err.path)
            raise ValidationError(f"options.{path}" if path else "options", err.msg) from None
        if not item.text.strip():
            raise ValidationError("message", "the SMS text is empty")
        settings = self.settings
        notify: bool = per_alert.get("delivery_notification", settings["delivery_notification"])
        qos = per_alert.get("qos") or (
            "express" if batch.priority is Priority.HIGH and settings["express_for_high_priority"]
            else settings["qos"])
        text, size = fit_text(item.text, best_encoding(item.text), settings.get("max_parts"),
                              settings["over_max_parts"])
        params = {"dst": format_number(item.number, self.capabilities.number_format),
                  "msg": text, "qos": qos,
                  "dn": DN_STYLES[settings["dn_values"]][0 if notify else 1]}
        sender = batch.sender or settings.get("sender")
        if sender:
            params["src"] = check_sender(sender)
        billcode = per_alert.get("billcode", settings.get("billcode"))
        if billcode:
            params["bc"] = billcode
        reference = per_alert.get("reference", settings.get("reference"))
        if reference is None and settings["reference_alert_id"]:
            # too long for 'ref': its start and a hash, deterministic and unique
            reference = item.alert_id if check_reference(item.alert_id) else short_ref(
                item.alert_id, REFERENCE_MAX)
        if reference:
            params["ref"] = reference
        return self._with_credentials(params), notify, size

    def _with_credentials(self, params: dict[str, str]) -> dict[str, str]:
        return {"user": self._user, "pass": self._password, **params}

    def _encode(self, params: dict[str, str]) -> dict[str, Any]:
        """httpx keyword arguments that carry ``params`` in the configured way."""
        style = self.settings["param_style"]
        if style == "query":
            return {"params": params}
        if style == "multipart":
            return {"files": [(key, (None, value)) for key, value in params.items()]}
        return {"data": params}

    # --- answers ---------------------------------------------------------------------------
    async def _report(self, job_id: str) -> Report | None:
        """The job's report, or None when the provider does not know the job."""
        response = await self._api.request(
            "GET", "reports", expected=(200, 404),
            params=self._with_credentials({"jobid": job_id}))
        if response.status_code == 404:
            _LOGGER.debug("%s: job %s not found (HTTP 404)", self.name, job_id)
            return None
        return parse_report(self.name, response.text, self._scrub)

    def _update(self, item: SubmittedItem, job_id: str, report: Report | None) -> StatusUpdate:
        now = self.context.clock.now()
        if report is None:
            return StatusUpdate(state=DeliveryState.SUBMITTED, delivery_id=item.delivery_id,
                                provider_ref=job_id, provider_message_id=job_id,
                                number=item.number, reason=NOT_FOUND_REASON, at=now,
                                details={"found": False})
        state, reason = normalise(report.process_status, report.status)
        details: dict[str, Any] = {"process_status": report.process_status or "",
                                   "status": report.status or ""}
        if report.reason:
            details["provider_reason"] = report.reason
        _LOGGER.debug("%s: job %s is %s (%s)", self.name, job_id, report.text, state.value)
        return StatusUpdate(state=state, delivery_id=item.delivery_id, provider_ref=job_id,
                            provider_message_id=job_id, number=item.number,
                            provider_status=report.text, reason=reason, at=now,
                            details=details)

    def _describe_error(self, response: httpx.Response) -> tuple[str | None, str | None]:
        """The provider's code and message from an error body, with credentials masked."""
        code, message = default_error_message(response)
        return code, self._scrub(message) if message else None

    def _scrub(self, text: str) -> str:
        """``text`` without the password (redactor) or the login id."""
        text = self.context.redactor.text(text)
        if len(self._user) >= 3:
            text = text.replace(self._user, MASK)
        return text


ADAPTER = RetarusSmsHttpProvider
