"""Retarus SMS REST v1 wire format: value rules, and tolerant parsing of the service's answers.

Facts from seeds/retarus-sms-rest-v1.txt and PROVIDERS.md section A; names as Retarus spells them
appear only in the ``*_json`` / ``from_json`` functions of this module and of ``retarus_sms``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import voluptuous as vol

from alertline.providers._http import first_present
from alertline.providers.base import StatusUpdate, SubmittedItem
from alertline.providers.retarus.common import REF_HASH_LENGTH, one_of, short_ref
from alertline.providers.retarus.status import normalise

ENCODINGS = ("STANDARD", "UTF-16")
INVALID_CHARACTERS = ("REFUSE", "REPLACE", "TO_UTF16", "TRANSLITERATE")
QOS = ("EXPRESS", "NORMAL")

JOB_REASONS = {  # documented texts of POST /jobs answers (all "No content")
    400: "Invalid JobRequest-data (qos, encoding, ..)",
    401: "Authentication failed",
    409: "Duplicate job (detected by enabled duplicate-detection)",
    422: "Invalid JobRequest-data (invalid chars, no messages, ..)",
    429: "Too many requests in the last 10 seconds (retry later)",
    500: "Can't accept job or unable to transliterate sms-text",
}
READ_REASONS = {400: "Invalid request-parameter", 401: "Authentication failed",
                500: "Can't query the report"}

MAX_RECIPIENTS_PER_JOB = 3000
VALIDITY_MIN, VALIDITY_MAX = 5, 2880
MAX_PARTS_MIN, MAX_PARTS_MAX = 1, 20
MAX_BILLCODE_LENGTH = 70     # billcode: max. 70 characters
MAX_REF_LENGTH = 64          # customerRef: "recommended max. 64" (the Go SDK says 70): the lower
LIST_LIMIT_MAX = 1000
LIST_RANGE_DAYS = 30
JOB_ID_PATTERN = re.compile(r"J\..{18,38}")


def parse_ts(value: Any) -> datetime | None:
    """A provider timestamp as an aware datetime (naive means UTC); None if absent or unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso_ms(when: datetime) -> str:
    """``when`` as Retarus writes timestamps: ``2018-09-24T11:00:00.000+02:00``."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.isoformat(timespec="milliseconds")


def job_ref(alert_ids: Sequence[str]) -> str:
    """The job customerRef of a batch: its alert id, or for several alerts the first one, their
    count and a hash of them all (two batches never share a reference)."""
    ids = sorted(set(alert_ids))
    if len(ids) == 1:
        return short_ref(ids[0])
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:REF_HASH_LENGTH]
    head = f"+{len(ids) - 1}~{digest}"
    return f"{ids[0][:MAX_REF_LENGTH - len(head)]}{head}"


def check_period(value: Any) -> str:
    """An ISO 8601 interval ``start/end`` (end after start), as given; ``vol.Invalid`` if not."""
    if not isinstance(value, str) or value.count("/") != 1:
        raise vol.Invalid(f"expected an ISO 8601 interval start/end, got {value!r}")
    start_text, end_text = (part.strip() for part in value.split("/"))
    start, end = parse_ts(start_text), parse_ts(end_text)
    if start is None or end is None:
        raise vol.Invalid(f"not an ISO 8601 interval of two timestamps: {value!r}")
    if end <= start:
        raise vol.Invalid(f"interval ends before it starts: {value!r}")
    return f"{start_text}/{end_text}"


def check_timestamp(value: Any) -> str:
    """An ISO 8601 timestamp string, as given; ``vol.Invalid`` if unreadable."""
    if isinstance(value, datetime):
        return iso_ms(value)
    if parse_ts(value) is None:
        raise vol.Invalid(f"expected an ISO 8601 timestamp, got {value!r}")
    return str(value)


def validity_minutes(expires: datetime, now: datetime) -> int:
    """Minutes until ``expires``, rounded up and clamped to the documented 5..2880."""
    minutes = math.ceil((expires - now).total_seconds() / 60)
    return max(VALIDITY_MIN, min(VALIDITY_MAX, minutes))


# ---- option schemas shared by the provider config and per-alert options -------------------

_periods = vol.All([check_period])
_ref = vol.All(str, vol.Length(min=1, max=MAX_REF_LENGTH))
_billcode = vol.All(str, vol.Length(min=1, max=MAX_BILLCODE_LENGTH))
_validity = vol.All(vol.Coerce(int), vol.Any(0, vol.Range(min=VALIDITY_MIN, max=VALIDITY_MAX)))
_max_parts = vol.All(vol.Coerce(int), vol.Range(min=MAX_PARTS_MIN, max=MAX_PARTS_MAX))


def job_settings_schema(defaults: bool) -> dict[Any, Any]:
    """Job options of the provider config (``defaults=True``) and of per-alert options."""
    def key(name: str, default: Any, description: str) -> vol.Optional:
        if defaults and default is not None:
            return vol.Optional(name, default=default, description=description)
        return vol.Optional(name, description=description)

    return {
        key("encoding", None, "STANDARD (GSM 7-bit) or UTF-16"): one_of(*ENCODINGS),
        key("billcode", None, "billing code, up to 70 characters"): _billcode,
        key("status_requested", True, "ask for delivery notifications (SUC_FIN instead of "
            "SUC_ACC)"): bool,
        key("flash", False, "flash SMS (shown at once, not stored; extra charge)"): bool,
        key("customer_ref", None, "job reference, up to 64 characters (default: the alert "
            "id; a longer one is shortened with a hash)"): _ref,
        key("validity_min", None, "validity in minutes: 0 = Retarus default, else 5..2880"):
            _validity,
        key("max_parts", None, "maximum parts of a long SMS, 1..20 (longer text is cut)"):
            _max_parts,
        key("invalid_characters", None, "REFUSE, REPLACE, TO_UTF16 or TRANSLITERATE"):
            one_of(*INVALID_CHARACTERS),
        key("qos", "NORMAL", "EXPRESS or NORMAL (high-priority alerts always EXPRESS)"):
            one_of(*QOS),
        key("duplicate_detection", True, "Retarus rejects an identical job within 10 minutes; "
            "makes resending after a timeout safe"): bool,
        key("blackout_periods", [] if defaults else None, "ISO 8601 intervals start/end "
            "when no SMS is sent"): _periods,
    }


RECIPIENT_SCHEMA: dict[Any, Any] = {
    vol.Optional("customer_ref", description="recipient reference, up to 64 characters"): _ref,
    vol.Optional("blackout_periods", description="replace the job's blackout periods"): _periods,
}

# per-alert options may use the names of the Retarus documentation, too
_ALIASES = {"statusRequested": "status_requested", "customerRef": "customer_ref",
            "validityMin": "validity_min", "maxParts": "max_parts",
            "invalidCharacters": "invalid_characters", "jobPeriod": "job_period",
            "duplicateDetection": "duplicate_detection", "blackoutPeriods": "blackout_periods"}


def unalias(options: Any) -> Any:
    """``options`` with Retarus spellings (``validityMin``) renamed to ours (``validity_min``)."""
    if not isinstance(options, dict):
        return options
    return {_ALIASES.get(k, k): ({n: unalias(r) for n, r in v.items()}
                                 if k == "recipients" and isinstance(v, dict) else v)
            for k, v in options.items()}


@dataclass(frozen=True, slots=True)
class JobReport:
    """``GET /jobs/{jobId}``: the job's settings, timestamps and SMS ids."""

    job_id: str
    receipt_ts: datetime | None = None
    finished_ts: datetime | None = None
    recipient_ids: tuple[str, ...] = ()
    customer_ref: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """Whether the job is final (``finishedTs`` is only present then)."""
        return self.finished_ts is not None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobReport:
        """Tolerant parse of a JobReport object."""
        ids = first_present(data, "recipientIds", "smsIds") or []
        return cls(
            job_id=str(first_present(data, "jobId", "id") or ""),
            receipt_ts=parse_ts(first_present(data, "receiptTs")),
            finished_ts=parse_ts(first_present(data, "finishedTs", "finalTs")),
            recipient_ids=tuple(str(i) for i in ids) if isinstance(ids, list) else (),
            customer_ref=_opt_str(first_present(data, "customerRef")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class RecipientReport:
    """One element of ``GET /sms?jobId=``: one recipient's status."""

    sms_id: str | None
    dst: str | None
    process_status: str | None
    status: str | None
    customer_ref: str | None = None
    reason: str | None = None
    sent_ts: datetime | None = None
    finished_ts: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecipientReport:
        """Tolerant parse of a RecipientReport object."""
        return cls(
            sms_id=_opt_str(first_present(data, "smsId", "id")),
            dst=_opt_str(first_present(data, "dst", "number")),
            process_status=_opt_str(first_present(data, "processStatus")),
            status=_opt_str(first_present(data, "status")),
            customer_ref=_opt_str(first_present(data, "customerRef")),
            reason=_opt_str(first_present(data, "reason")),
            sent_ts=parse_ts(first_present(data, "sentTs")),
            finished_ts=parse_ts(first_present(data, "finishedTs", "finalTs")),
            raw=dict(data),
        )


def parse_recipient_reports(data: Any) -> list[RecipientReport]:
    """The recipient array of ``GET /sms`` (also tolerates ``{"recipients": [...]}``)."""
    if isinstance(data, Mapping):
        data = first_present(data, "recipients", "sms", "items") or []
    if not isinstance(data, list):
        return []
    return [RecipientReport.from_json(item) for item in data if isinstance(item, Mapping)]


def parse_job_entries(data: Any) -> list[tuple[str, str | None]]:
    """``(jobId, customerRef or None)`` from ``GET /jobs``: objects, full reports or strings."""
    if isinstance(data, Mapping):
        data = first_present(data, "jobs", "jobIds", "items") or []
    if not isinstance(data, list):
        return []
    entries: list[tuple[str, str | None]] = []
    for item in data:
        if isinstance(item, str):
            entries.append((item, None))
        elif isinstance(item, Mapping):
            job_id = first_present(item, "jobId", "id")
            if job_id:
                entries.append((str(job_id), _opt_str(first_present(item, "customerRef"))))
    return entries


def parse_job_ids(data: Any) -> list[str]:
    """Job ids from ``GET /jobs``."""
    return [job_id for job_id, _ in parse_job_entries(data)]


def match_reports(items: Sequence[SubmittedItem], refs: Mapping[str, str],
                  reports: Sequence[RecipientReport]
                  ) -> list[tuple[SubmittedItem, RecipientReport]]:
    """Pair reports with submitted items: by customerRef (a delivery id, or a custom ref mapped
    through ``refs``), else by number; each item at most once."""
    by_id = {item.delivery_id: item for item in items}
    by_id.update({short_ref(item.delivery_id): item for item in items})
    by_number: dict[str, list[SubmittedItem]] = {}
    for item in items:
        by_number.setdefault(item.number, []).append(item)
    matched: set[str] = set()
    pairs: list[tuple[SubmittedItem, RecipientReport]] = []
    for report in reports:
        ref = report.customer_ref or ""
        found = by_id.get(refs.get(ref, ref))
        if found is None or found.delivery_id in matched:
            found = next((i for i in by_number.get(report.dst or "", [])
                          if i.delivery_id not in matched), None)
        if found is not None:
            matched.add(found.delivery_id)
            pairs.append((found, report))
    return pairs


def status_update(item: SubmittedItem, job_id: str, report: RecipientReport) -> StatusUpdate:
    """The normalised status of one recipient report; the provider's values kept beside it."""
    state, meaning = normalise(report.process_status, report.status)
    provider_status = " ".join(p for p in (report.process_status, report.status) if p)
    return StatusUpdate(
        state=state, delivery_id=item.delivery_id, provider_ref=job_id,
        provider_message_id=report.sms_id, number=item.number,
        provider_status=provider_status or None, reason=report.reason or meaning,
        at=report.finished_ts or report.sent_ts, details={**report.raw, "meaning": meaning})


def version_text(data: Mapping[str, Any]) -> str | None:
    """A readable version from ``GET /version`` (its field names are not documented: tolerant)."""
    major = first_present(data, "majorVersion", "major")
    minor = first_present(data, "minorVersion", "minor")
    build = first_present(data, "buildNumber", "build")
    if major is not None:
        text = f"{major}.{minor}" if minor is not None else str(major)
        return f"{text} (build {build})" if build is not None else text
    plain = first_present(data, "version", "versionInfo")
    return str(plain) if plain is not None else None


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None
