"""Retarus Voice SOAP v3 wire format: job requests, report parsing, status table.

What a SOAP fault means is in :mod:`.voice_faults`.

Field names follow the seed's tables (retarus-voice-soap-v3.txt) and appear only in this module
and in the shipped WSDL. Everything here is pure: no I/O, no zeep calls.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from alertline.errors import (
    ValidationError,
)
from alertline.model import DeliveryState
from alertline.providers._http import first_present

BUNDLED_WSDL = "retarus_voice_v3.wsdl"

# our operation -> every spelling the seed gives it: the methods table says getAvailableReports
# and getJobReport, the headings and Java samples getAvailableJobReports and getJobReports. The
# live WSDL decides; the first spelling is the default for the bundled copy.
OPERATIONS: dict[str, tuple[str, ...]] = {
    "version": ("getVersionInfo",),
    "send": ("sendJob",),
    "reports": ("getAvailableReports", "getAvailableJobReports"),
    "report": ("getJobReport", "getJobReports"),
}
# the bundled copy's namespace: a placeholder (no public WSDL exists, PROVIDERS.md C), never sent
PLACEHOLDER_NAMESPACE = "http://retarus.com/voice4a/voicews/3/0"
WAV_CONTENT_TYPES = ("audio/x-wav", "audio/wav", "audio/wave", "audio/vnd.wave")

# RecipientReport.status (seed: PENDING, SCHEDULED, TRANSMITTING, SUCCESSFUL, FAILED)
RECIPIENT_STATUS: dict[str, DeliveryState] = {
    "PENDING": DeliveryState.SUBMITTED,
    "SCHEDULED": DeliveryState.SUBMITTED,
    "TRANSMITTING": DeliveryState.SUBMITTED,
    "SUCCESSFUL": DeliveryState.DELIVERED,
    "FAILED": DeliveryState.FAILED,
}
FINISHED = "FINISHED"
PROCESSING = "PROCESSING"


@dataclass(frozen=True, slots=True)
class VoiceContent:
    """One entry of ``JobRequest.contents``: inline bytes or a URL, with its content type."""

    content_type: str | None = None
    content: bytes | None = None
    url: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The ``Content`` element's fields."""
        return {"contentType": self.content_type, "content": self.content,
                "contentUrl": self.url}


@dataclass(frozen=True, slots=True)
class VoiceRecipient:
    """One entry of ``JobRequest.recipients``."""

    recipient_id: str
    caller_id: str | None = None
    blackout_periods: tuple[str, ...] = ()
    personalization: Mapping[str, str] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """The ``Recipient`` element's fields."""
        entries = [{"key": k, "value": v} for k, v in self.personalization.items()]
        return {
            "recipientId": self.recipient_id,
            "callerId": self.caller_id,
            "blackoutPeriods": list(self.blackout_periods),
            "personalization": {"entries": entries} if entries else None,
        }


@dataclass(frozen=True, slots=True)
class VoiceJob:
    """A ``sendJob`` request without the credentials."""

    contents: tuple[VoiceContent, ...]
    recipients: tuple[VoiceRecipient, ...]
    caller_id: str
    locale: str
    job_period: str | None = None
    blackout_periods: tuple[str, ...] = ()
    cost_center: str | None = None
    reference: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """The ``JobRequest`` fields after ``username`` and ``password``."""
        entries = [{"key": k, "value": v} for k, v in self.options.items()]
        return {
            "contents": [c.to_wire() for c in self.contents],
            "recipients": [r.to_wire() for r in self.recipients],
            "callerId": self.caller_id,
            "locale": self.locale,
            "jobPeriod": self.job_period,
            "blackoutPeriods": list(self.blackout_periods),
            "costCenter": self.cost_center,
            "reference": self.reference,
            "options": {"entries": entries} if entries else None,
        }


@dataclass(frozen=True, slots=True)
class RecipientReport:
    """``RecipientReport``: one recipient's call status in a job report."""

    recipient_id: str
    status: str
    state: str | None = None
    status_text: str | None = None
    caller_id: str | None = None
    last_try: str | None = None
    call_duration: float | None = None
    try_count: int | None = None

    def delivery_state(self, *, job_finished: bool = False) -> DeliveryState:
        """The normalised state (see :func:`recipient_state`)."""
        return recipient_state(self.status, self.state, job_finished=job_finished)

    def details(self) -> dict[str, Any]:
        """Everything the report says, for ``StatusUpdate.details``."""
        return {"status": self.status, "state": self.state, "statusText": self.status_text,
                "callerId": self.caller_id, "lastTryTs": self.last_try,
                "callDuration": self.call_duration, "tryCount": self.try_count}


@dataclass(frozen=True, slots=True)
class JobReport:
    """``JobReportResponse``: a voice job's status and its recipients' reports."""

    job_id: str
    status: str | None
    state: str | None
    created: str | None = None
    reference: str | None = None
    cost_center: str | None = None
    recipients: tuple[RecipientReport, ...] = ()

    @property
    def finished(self) -> bool:
        """Whether Retarus says the whole job is done."""
        return (self.status or "").upper() == FINISHED


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """``VersionInfoResponse``."""

    build_number: int | None
    build_timestamp: str | None
    major: int | None
    minor: int | None
    info: str | None

    @property
    def version(self) -> str:
        """``major.minor (build N, timestamp)`` as far as known."""
        text = ".".join(str(v) for v in (self.major, self.minor) if v is not None) or "unknown"
        if self.build_number is not None:
            text += f" (build {self.build_number:05d}"
            text += f", {self.build_timestamp})" if self.build_timestamp else ")"
        return text


def recipient_state(status: str | None, state: str | None = None, *,
                    job_finished: bool = False) -> DeliveryState:
    """The normalised state of a recipient: final only once its ``state`` is FINISHED.

    Seed (RecipientReport): ``status`` PENDING … SUCCESSFUL, FAILED; ``state`` PROCESSING,
    FINISHED. ``FAILED`` while ``state`` is PROCESSING is a failed attempt that Retarus still
    retries (``tryCount`` tells), so it stays open. An answer without a ``state`` (the seed makes
    it required) counts as FINISHED only when the whole job is.
    """
    stage = (state or "").strip().upper() or (FINISHED if job_finished else PROCESSING)
    if stage != FINISHED:
        return DeliveryState.SUBMITTED
    known = RECIPIENT_STATUS.get((status or "").strip().upper())
    return DeliveryState.FAILED if known in (None, DeliveryState.SUBMITTED) else known


def plain(value: Any) -> Any:
    """A zeep answer as plain dicts, lists and scalars (tolerant of any shape)."""
    if value is None or isinstance(value, str | bytes | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    values = getattr(value, "__values__", None)
    if isinstance(values, Mapping):
        return {k: plain(v) for k, v in values.items() if not str(k).startswith("_")}
    return str(value)


def _text(data: Mapping[str, Any], *keys: str) -> str | None:
    value = first_present(data, *keys)
    return None if value is None else str(value)


def _number(data: Mapping[str, Any], key: str, kind: type[int] | type[float]) -> Any:
    value = first_present(data, key)
    try:
        return None if value in (None, "") else kind(value)
    except (TypeError, ValueError):
        return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def parse_job_id(answer: Any) -> str | None:
    """The ``jobId`` of a ``sendJob`` answer (zeep unwraps a single-field answer to a string)."""
    data = plain(answer)
    if isinstance(data, Mapping):
        data = first_present(data, "jobId", "id")
    text = str(data).strip() if data is not None else ""
    return text or None


def parse_job_ids(answer: Any) -> list[str]:
    """The ``jobIds`` of a ``getAvailableReports`` answer, in the service's order."""
    data = plain(answer)
    if isinstance(data, Mapping):
        data = first_present(data, "jobIds", "jobId")
    return [str(v).strip() for v in _as_list(data) if v is not None and str(v).strip()]


def parse_job_report(answer: Any) -> JobReport | None:
    """A ``JobReportResponse``, or None when the answer has no job in it."""
    data = plain(answer)
    if not isinstance(data, Mapping):
        return None
    job_id = _text(data, "jobId")
    if not job_id:
        return None
    recipients = []
    for entry in _as_list(first_present(data, "recipients", "recipient")):
        if not isinstance(entry, Mapping) or not _text(entry, "recipientId"):
            continue
        recipients.append(RecipientReport(
            recipient_id=str(_text(entry, "recipientId")),
            status=(_text(entry, "status") or "").strip().upper(),
            state=_text(entry, "state"),
            status_text=_text(entry, "statusText"),
            caller_id=_text(entry, "callerId"),
            last_try=_text(entry, "lastTryTs"),
            call_duration=_number(entry, "callDuration", float),
            try_count=_number(entry, "tryCount", int),
        ))
    return JobReport(job_id=job_id, status=_text(data, "status"), state=_text(data, "state"),
                     created=_text(data, "createTs"), reference=_text(data, "reference"),
                     cost_center=_text(data, "costCenter"), recipients=tuple(recipients))


def parse_version(answer: Any) -> VersionInfo:
    """A ``VersionInfoResponse``."""
    data = plain(answer)
    data = data if isinstance(data, Mapping) else {}
    return VersionInfo(build_number=_number(data, "buildNumber", int),
                       build_timestamp=_text(data, "buildTimestamp"),
                       major=_number(data, "majorVersion", int),
                       minor=_number(data, "minorVersion", int),
                       info=_text(data, "versionInfo"))


def parse_timestamp(text: str | None) -> datetime | None:
    """An ISO 8601 timestamp from a report (or the ``2014-09-09 11:37:36 +0200`` form)."""
    if not text:
        return None
    for candidate in (text.strip(), text.strip().replace(" ", "T", 1)):
        try:
            value = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S %z")
    except ValueError:
        return None


def iso_utc(when: datetime) -> str:
    """``when`` as ``2014-08-01T13:00:00Z`` (the seed's period examples)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_DURATION = re.compile(
    r"P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?")


def _is_timestamp(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in text


def is_job_period(text: str) -> bool:
    """Whether ``text`` is one of the seed's two-part jobPeriod forms.

    Seed (jobPeriod): start/end, start/duration, duration/end (ISO 8601). A bare start or two
    durations bound nothing, so they are not sent.
    """
    parts = text.strip().split("/")
    if len(parts) != 2:
        return False
    kinds = ["t" if _is_timestamp(p) else "d" if _DURATION.fullmatch(p) else "x" for p in parts]
    if kinds == ["t", "t"]:
        first, last = parse_timestamp(parts[0]), parse_timestamp(parts[1])
        return first is not None and last is not None and first < last
    return kinds in (["t", "d"], ["d", "t"])


def job_period(start: datetime | None, end: datetime | None, now: datetime, *,
               window: timedelta) -> str | None:
    """A ``start/end`` jobPeriod, or None when the alert bounds neither.

    The start defaults to ``now``; an alert with only ``not_before`` gets ``window`` after its
    start, because the seed's forms all carry two parts (an unbounded period is not one).
    """
    if start is None and end is None:
        return None
    begin = start or now
    finish = end if end is not None else begin + window
    if finish <= begin:
        raise ValidationError("expires", "must be after not_before")
    return f"{iso_utc(begin)}/{iso_utc(finish)}"


def digits(number: str) -> str:
    """Only the digits of a phone number (for matching report ids to what we sent)."""
    text = number.strip()
    if text.startswith("00"):
        text = text[2:]
    return re.sub(r"\D", "", text)


def match_reports(sent_ids: Sequence[str],
                  reports: Iterable[RecipientReport]) -> list[RecipientReport | None]:
    """For each recipient id we sent, its report (by digits; repeated numbers in order)."""
    pool: dict[str, list[RecipientReport]] = {}
    for report in reports:
        pool.setdefault(digits(report.recipient_id), []).append(report)
    return [pool[key].pop(0) if pool.get(key) else None for key in map(digits, sent_ids)]
