"""What Retarus Voice can be configured with: the adapter's options and an alert's options.

Split from the adapter (:mod:`.voice`) so the schemas, which the config checker, the CLI's
listing and the Home Assistant config flow all read, sit apart from the SOAP calls. The
validators check only the shape (two-part periods, charsets, base64, regexes); Retarus checks
the detail. Seed: retarus-voice-soap-v3.txt (sendJob options, blackoutPeriod, jobPeriod).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from typing import Any

import voluptuous as vol

from alertline.phone import NumberFormat
from alertline.providers._http import MAX_RESPONSE_BYTES, transport_options
from alertline.providers.retarus.voice_faults import DEFAULT_AUTH_FAULT, DEFAULT_DUPLICATE_FAULT
from alertline.providers.retarus.voice_wire import OPERATIONS, WAV_CONTENT_TYPES, is_job_period

DEFAULT_URL = "https://voice4a.retarus.com/soap/v3"
BUNDLED = "bundled"


def _charset(value: Any) -> str:
    """A charset name Python can encode with."""
    text = str(value)
    try:
        codecs.lookup(text)
    except LookupError:
        raise vol.Invalid(f"unknown charset {text!r}") from None
    return text


def _period(value: Any) -> str:
    """A blackoutPeriod: two parts (``10:00Z/11:00Z`` every day, ``start/end``,
    ``start/duration``, ``duration/end``; seed: blackoutPeriod), checked in detail by Retarus."""
    text = str(value).strip()
    parts = text.split("/")
    if len(parts) != 2 or not all(p and not any(c.isspace() for c in p) for p in parts):
        raise vol.Invalid(f"not a two-part ISO 8601 period: {text!r}")
    return text


def _job_period(value: Any) -> str:
    """A jobPeriod in one of the seed's two-part forms: start/end, start/duration, duration/end."""
    text = str(value).strip()
    if not is_job_period(text):
        raise vol.Invalid(f"not a jobPeriod (start/end, start/duration or duration/end, "
                          f"ISO 8601, start before end): {text!r}")
    return text


def _regex(value: Any) -> str:
    """A regular expression (empty: never matches)."""
    text = str(value)
    try:
        re.compile(text)
    except re.error as err:
        raise vol.Invalid(f"not a regular expression: {err}") from None
    return text


def _base64(value: Any) -> str:
    """Base64 text (the WAV bytes of a content)."""
    text = str(value)
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise vol.Invalid("not valid base64") from None
    return text


def _one_kind(content: dict[str, Any]) -> dict[str, Any]:
    """A content entry names exactly one of ``message``, ``text``, ``wav``, ``url``."""
    kinds = [k for k in ("message", "text", "wav", "url") if content.get(k) not in (None, False)]
    if len(kinds) != 1:
        raise vol.Invalid("a content needs exactly one of message, text, wav, url")
    return content


_periods = vol.All(vol.Coerce(list), [_period])

_CONTENT = vol.All({
    vol.Optional("message", description="true: the alert's message, as a TTS template"):
        vol.Boolean(),
    vol.Optional("text", description="text spoken by TTS (may hold ${key} placeholders)"): str,
    vol.Optional("wav", description="WAV audio, base64-encoded"): _base64,
    vol.Optional("url", description="contentUrl: Retarus fetches the text or audio here"):
        vol.Url(),
    vol.Optional("content_type", description="contentType; default by kind"): str,
}, _one_kind)

_RECIPIENT = {
    vol.Optional("caller_id", description="callerId shown to this recipient"): str,
    vol.Optional("blackout_periods", description="this recipient's blackoutPeriods"): _periods,
    vol.Optional("personalization", description="extra ${key} values for this recipient"):
        {vol.Coerce(str): vol.Coerce(str)},
}



OPTIONS: dict[Any, Any] = {
    vol.Required("username", description="Retarus Voice API login id"): str,
    vol.Required("password", description="Retarus Voice API password"): str,
    vol.Optional("url", default=DEFAULT_URL, description="SOAP endpoint address"): vol.Url(),
    vol.Optional("wsdl_url", default=None,
                 description="WSDL location (only this host is trusted for its schemas); "
                 "empty: '<url>?wsdl'; 'bundled': shipped copy"):
        vol.Any(None, str),
    vol.Optional("wsdl_namespace", default=None,
                 description="the service's target namespace, used only with the bundled "
                 "WSDL; unset: no fallback, calls wait until the live WSDL loads"):
        vol.Any(None, vol.All(str, vol.Length(min=1))),
    vol.Optional("list_operation", default=OPERATIONS["reports"][0],
                 description="job-list method name in the bundled WSDL (the live WSDL's "
                 "own spelling always wins)"): vol.In(OPERATIONS["reports"]),
    vol.Optional("report_operation", default=OPERATIONS["report"][0],
                 description="job-report method name in the bundled WSDL (the live WSDL's "
                 "own spelling always wins)"): vol.In(OPERATIONS["report"]),
    vol.Optional("job_window", default=24 * 3600.0,
                 description="jobPeriod length, seconds, when an alert has only not_before"):
        vol.All(vol.Coerce(float), vol.Range(min=60)),
    vol.Optional("caller_id", default=None,
                 description="job callerId when the alert has no sender"): vol.Any(None, str),
    vol.Optional("locale", default="en_US",
                 description="TTS language when the alert has none, e.g. de_DE"): str,
    vol.Optional("charset", default="UTF-8",
                 description="charset of text contents (text/plain; charset=...)"): _charset,
    vol.Optional("audio_content_type", default="audio/x-wav",
                 description="contentType of WAV contents and of the alert's audio_url"):
        vol.In(WAV_CONTENT_TYPES),
    vol.Optional("cost_center", default=None, description="costCenter for billing"):
        vol.Any(None, str),
    vol.Optional("duplicate_detection", default=None,
                 description="options.duplicateDetection (unset: Retarus default)"):
        vol.Any(None, vol.Boolean()),
    vol.Optional("job_options", default=dict,
                 description="further options entries (key: value) sent with every job"):
        {vol.Coerce(str): vol.Coerce(str)},
    vol.Optional("number_format", default=NumberFormat.E164.value,
                 description="recipientId format: e164 (+49...) or digits (49...)"):
        vol.In([f.value for f in NumberFormat]),
    vol.Optional("max_recipients", default=100, description="recipients per sendJob"):
        vol.All(vol.Coerce(int), vol.Range(min=1, max=10000)),
    **transport_options(timeout=30.0, poll_interval=30.0, deadline=48 * 3600.0,
                        retried="429, 5xx, connection errors and Server faults"),
    vol.Optional("max_response_bytes", default=MAX_RESPONSE_BYTES,
                 description="largest answer or WSDL accepted, bytes"):
        vol.All(vol.Coerce(int), vol.Range(min=1024)),
    vol.Optional("auth_fault_pattern", default=DEFAULT_AUTH_FAULT,
                 description="regex: a SOAP fault matching it is an authentication error"):
        _regex,
    vol.Optional("duplicate_fault_pattern", default=DEFAULT_DUPLICATE_FAULT,
                 description="regex: a SOAP fault matching it is a duplicate job"): _regex,
    vol.Optional("check_credentials", default=True,
                 description="check() also calls getAvailableReports to test the login"):
        vol.Boolean(),
}
ALERT_OPTIONS: dict[Any, Any] = {
    vol.Optional("caller_id", description="job callerId (overrides the sender)"): str,
    vol.Optional("locale", description="job locale, e.g. de_DE"): str,
    vol.Optional("job_period", description="jobPeriod (ISO 8601 start/end, start/duration "
                 "or duration/end)"): _job_period,
    vol.Optional("blackout_periods", description="job blackoutPeriods, added to quiet hours"):
        _periods,
    vol.Optional("cost_center", description="costCenter"): str,
    vol.Optional("reference", description="reference (default: the alert id)"): str,
    vol.Optional("duplicate_detection", description="options.duplicateDetection"):
        vol.Boolean(),
    vol.Optional("job_options", description="further options entries"):
        {vol.Coerce(str): vol.Coerce(str)},
    vol.Optional("contents", description="the contents in order (default: the message, "
                 "or the audio_url)"): vol.All([_CONTENT], vol.Length(min=1)),
    vol.Optional("recipients", description="per-number recipient settings"):
        {vol.Coerce(str): _RECIPIENT},
}
