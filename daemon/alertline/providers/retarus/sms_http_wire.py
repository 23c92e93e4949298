"""Retarus SMS HTTP Simple wire format: value rules and tolerant parsing of undocumented answers.

The seed (retarus-sms-http.txt) documents parameters, status codes and the status table, but not
the answer bodies (PROVIDERS.md B): the job id may come as bare text or JSON, a report as
``"<ProcessStatus> <Status>"`` text or JSON. Everything here accepts every plausible form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import voluptuous as vol

from alertline.errors import ProviderAnswerError
from alertline.providers._http import first_present
from alertline.providers.retarus.status import PROCESS_STATUSES, STATUSES

# how 'dn' may be spelt; the seed's default is "false" (PROVIDERS.md B: on/off also plausible)
DN_STYLES: dict[str, tuple[str, str]] = {
    "true/false": ("true", "false"),
    "on/off": ("on", "off"),
    "yes/no": ("yes", "no"),
    "1/0": ("1", "0"),
}

# the seed's response tables (errors are documented as "No content")
ERROR_REASONS: dict[int, str] = {
    400: "One or more parameters are invalid. Mandatory parameters might be missing.",
    401: "Authentication information is missing or invalid.",
    405: "The HTTP method used is not allowed on this resource.",
    500: "Internal Server Error. Please try again later or contact Retarus support.",
}

REFERENCE_MAX, REFERENCE_MAX_ASCII = 70, 192

_PROCESS_TOKENS = PROCESS_STATUSES | {"CANCELLED", "KILLED"}
_KEY_WORDS = {"STATUS", "PROCESSSTATUS", "PROCESS_STATUS", "JOBID", "JOB_ID", "REASON"}
_STATUS_TOKEN = re.compile(r"[A-Z][A-Z0-9_]*")
_SPLIT = re.compile(r"[\s;,=:|\"'{}\[\]]+")
_JOB_ID = re.compile(r"\bJ\.[0-9A-Za-z][0-9A-Za-z.\-]{5,}")
_LABELLED_JOB_ID = re.compile(r"(?i)\bjob_?id\b\s*[:=]\s*\"?([^\s\"',;}]+)")
_BARE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,99}")
_UNKNOWN_JOB = re.compile(r"(?i)\b(unknown|not\s+found|no\s+such|does\s+not\s+exist)\b")

Scrub = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Report:
    """A job report as the provider gave it: ProcessStatus, Status and an optional reason."""

    process_status: str | None
    status: str | None
    reason: str | None = None

    @property
    def text(self) -> str:
        """The provider's status as one string, e.g. ``"DONE SUC_FIN"``."""
        return " ".join(part for part in (self.process_status, self.status) if part)


def check_reference(value: str) -> bool:
    """Whether ``value`` fits 'ref': max. 70 characters (192 for US-ASCII)."""
    return len(value) <= (REFERENCE_MAX_ASCII if value.isascii() else REFERENCE_MAX)


def reference_validator(value: Any) -> str:
    """Voluptuous validator for a 'ref' value."""
    if not isinstance(value, str):
        raise vol.Invalid("expected a string")
    if not check_reference(value):
        raise vol.Invalid(f"at most {REFERENCE_MAX} characters "
                          f"({REFERENCE_MAX_ASCII} if US-ASCII only)")
    return value


def _json(text: str) -> Any:
    if not text.startswith(("{", "[", '"')):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _excerpt(text: str, scrub: Scrub) -> str:
    return scrub(" ".join(text.split())[:80])


def parse_job_id(provider: str, body: str, scrub: Scrub) -> str:
    """The job id in a ``POST /sms`` answer: bare text, ``jobid=...`` or JSON ``{"jobId": ...}``."""
    text = body.strip()
    data = _json(text)
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, dict):
        value = first_present(data, "jobId", "jobid", "job_id", "id")
        if isinstance(value, str | int) and str(value).strip():
            return str(value).strip()
    elif isinstance(data, str) and data.strip():
        return data.strip()
    if text and data is None:
        found = _JOB_ID.search(text) or _LABELLED_JOB_ID.search(text)
        if found:
            return found.group(1) if found.re is _LABELLED_JOB_ID else found.group(0)
        if _BARE_ID.fullmatch(text):
            return text
    raise ProviderAnswerError(
        provider, f"no job id in the answer to POST /sms: {_excerpt(text, scrub)!r}")


def parse_report(provider: str, body: str, scrub: Scrub) -> Report | None:
    """A ``GET /reports`` answer as a :class:`Report`; None if it says the job is unknown."""
    text = body.strip()
    data = _json(text)
    if isinstance(data, list) and data:
        data = data[0]
    report = _report_from_json(data) if isinstance(data, dict) else _report_from_text(text)
    if report is not None:
        return report
    if _UNKNOWN_JOB.search(text):
        return None
    raise ProviderAnswerError(
        provider, f"unreadable answer to GET /reports: {_excerpt(text, scrub)!r}")


def _report_from_json(data: dict[str, Any]) -> Report | None:
    process = first_present(data, "processStatus", "process_status")
    status = first_present(data, "status", "smsStatus")
    if process is None and status is None:
        return None
    reason = first_present(data, "reason", "statusText", "description")
    return Report(process_status=str(process).strip().upper() if process is not None else None,
                  status=str(status).strip().upper() if status is not None else None,
                  reason=str(reason) if reason is not None else None)


def _report_from_text(text: str) -> Report | None:
    """``"DONE SUC_FIN"``, ``"OPEN"``, ``"ProcessStatus=DONE;Status=SUC_FIN"`` and the like."""
    tokens = [token for token in _SPLIT.split(text) if token]
    for index, token in enumerate(tokens):
        if token.upper() not in _PROCESS_TOKENS:
            continue
        rest = tokens[index + 1:]
        status = ""
        if (rest and _STATUS_TOKEN.fullmatch(rest[0]) and rest[0] not in _KEY_WORDS
                and rest[0] not in _PROCESS_TOKENS):
            status = rest[0]
        else:
            status = next((t.upper() for t in rest if t.upper() in STATUSES), "")
        return Report(process_status=token.upper(), status=status)
    bare = next((token.upper() for token in tokens if token.upper() in STATUSES), None)
    return Report(process_status=None, status=bare) if bare else None
