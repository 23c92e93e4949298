"""Emulator of the Retarus Voice API v3 SOAP service (seed retarus-voice-soap-v3.txt).

Serves the WSDL at ``GET /soap/v3?wsdl`` (alertline's shipped copy, with this server's address,
its ``namespace`` and its spelling of the two report methods: the seed names them both
``getAvailableReports``/``getAvailableJobReports`` and ``getJobReport``/``getJobReports``) and
answers SOAP 1.1 document/literal envelopes at ``POST /soap/v3``: ``getVersionInfo`` (no login),
``sendJob``, the job list and the job report (``username``/``password`` must be the first two
children and match). A request element outside the WSDL's namespace, or an operation the WSDL
does not name, is a ``soap:Client`` fault, as a real SOAP stack answers. Faults are SOAP 1.1
``soap:Fault`` with HTTP 500: ``soap:Client`` for a bad login ("Authentication failed"), invalid
data (e.g. a jobPeriod that is not one of the seed's two-part forms), an unknown job or a
duplicate job (duplicateDetection=true, same request within 10 minutes); ``soap:Server`` on demand.
429 with Retry-After after ``burst`` requests in a 10-second window; 5xx and slow answers on demand.
Schemas it imports (``wsdl_imports``) are served at ``?xsd=N`` as JAX-WS does; a hostile WSDL
on demand: ``wsdl_imports`` naming other hosts, ``wsdl_redirect`` (where ``?wsdl`` redirects to)
and ``wsdl_doctype`` (a DTD, e.g. with an external entity).

Each recipient's call progresses by the emulator clock from the job's start (jobPeriod start or
receipt), outcome by the last character of ``recipientId`` (``OUTCOMES``): PENDING for
``step_seconds``, then each attempt is TRANSMITTING for a step; an attempt that is not the last
shows ``FAILED`` with ``state`` PROCESSING for a step (Retarus retries; ``tryCount`` tells), the
last one ends FINISHED. A job period starting later shows SCHEDULED until it starts.
:meth:`advance` moves the clock; standalone it follows real time.

Standalone: ``python -m tests.emulators.retarus_voice --port 8080 --user U --password P``.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from aiohttp import web
from lxml import etree

from alertline.clock import Clock, ManualClock, SystemClock

from ._base import EmulatorServer, Failure, standalone_parser

PATH = "/soap/v3"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
NS = "http://retarus.com/voice4a/voicews/3/0"
WAV_TYPES = {"audio/x-wav", "audio/wav", "audio/wave", "audio/vnd.wave"}
LIST_FIELDS = {"contents", "recipients", "blackoutPeriods", "entries", "jobIds"}
DUPLICATE_WINDOW = timedelta(minutes=10)
# the seed's own samples send "RecipientId.1": any visible text up to 64 characters is taken
RECIPIENT_RE = re.compile(r"[^\s]{1,64}")
LOCALE_RE = re.compile(r"[a-z]{2}_[A-Z]{2}")
DURATION_RE = re.compile(
    r"P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?")
DAYTIME_RE = re.compile(r"\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:\d{2})?")
# RecipientReport fields the seed marks required (lastTryTs too, empty before the first try)
REQUIRED_REPORT_FIELDS = frozenset({"recipientId", "callerId", "lastTryTs", "tryCount", "status",
                                    "state", "statusText"})
VERSION = {"buildNumber": "8", "buildTimestamp": "2014-09-09 11:37:36 +0200",
           "majorVersion": "2015", "minorVersion": "6", "versionInfo": "Voice SOAP v3 emulator"}
# last digit -> (final status, statusText, tryCount, callDuration); 9 never finishes; a tryCount
# above 1 means the attempts before the last one failed and were retried
OUTCOMES: dict[str, tuple[str, str, int, float | None]] = {
    **{d: ("SUCCESSFUL", "Call completed, message played", 1, 20.0 + int(d)) for d in "012345"},
    "6": ("SUCCESSFUL", "Call completed on the second attempt", 2, 31.5),
    "7": ("FAILED", "No answer", 3, 0.0),
    "8": ("FAILED", "Busy", 3, 0.0),
}


@dataclass(slots=True)
class Recipient:
    """A recipient of an emulated job."""

    recipient_id: str
    caller_id: str
    override: tuple[str, str, str] | None = None  # (status, state, statusText) from a test


@dataclass(slots=True)
class Job:
    """An accepted voice job."""

    job_id: str
    received: datetime
    start: datetime
    recipients: list[Recipient]
    request: dict[str, Any]
    reference: str | None
    cost_center: str | None
    key: bytes


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """What a test can inspect about one SOAP call."""

    operation: str
    fields: dict[str, Any]
    headers: dict[str, str]


class _Fault(Exception):
    def __init__(self, message: str, code: str, kind: str = "Client") -> None:
        super().__init__(message)
        self.message, self.code, self.kind = message, code, kind


def _local(element: Any) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _to_data(element: Any) -> Any:
    """An XML element as plain data; LIST_FIELDS always become lists."""
    children = [c for c in element if isinstance(c.tag, str)]
    if not children:
        return element.text or ""
    data: dict[str, Any] = {}
    for child in children:
        name, value = _local(child), _to_data(child)
        if name in LIST_FIELDS:
            data.setdefault(name, []).append(value)
        else:
            data[name] = value
    return data


def _timestamp(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _schema_namespace(url: str) -> str:
    """The namespace an imported schema declares (``urn:x-xsd-N`` for this server's ``?xsd=N``)."""
    match = re.search(r"[?&]xsd=(\w+)", url)
    return f"urn:x-xsd-{match.group(1)}" if match else "urn:x"


def _duration(text: str) -> timedelta:
    """An ISO 8601 duration (years as 365 days, months as 30: enough to place a period)."""
    match = DURATION_RE.fullmatch(text)
    assert match is not None
    units = {"Y": 365 * 86400, "W": 7 * 86400, "D": 86400, "H": 3600, "S": 1}
    date, _, time = text[1:].partition("T")
    seconds = 0.0
    for part, month in ((date, 30 * 86400), (time, 60)):
        for number, unit in re.findall(r"(\d+(?:\.\d+)?)([YMWDHS])", part):
            seconds += float(number) * (month if unit == "M" else units[unit])
    return timedelta(seconds=seconds)


def _period_start(text: str, *, daily: bool) -> tuple[bool, datetime | None]:
    """Whether ``text`` is a valid period, and its start timestamp if it has one.

    Seed (jobPeriod, blackoutPeriod): start/end, start/duration, duration/end; blackout periods
    also ``10:00Z/11:00Z`` (every day). Every form has two parts; an end must follow its start.
    """
    parts = text.split("/")
    if len(parts) != 2:
        return False, None
    if daily and all(DAYTIME_RE.fullmatch(p) for p in parts):
        return True, None
    kinds = ["t" if _timestamp(p) else "d" if DURATION_RE.fullmatch(p) else "x" for p in parts]
    if kinds == ["t", "t"]:
        start, end = _timestamp(parts[0]), _timestamp(parts[1])
        return bool(start and end and start < end), start
    if kinds == ["t", "d"]:
        return True, _timestamp(parts[0])
    if kinds == ["d", "t"]:
        end = _timestamp(parts[1])
        return True, end - _duration(parts[0]) if end else None
    return False, None


class RetarusVoiceEmulator(EmulatorServer[ReceivedRequest]):
    """A stateful Retarus Voice SOAP v3 service on 127.0.0.1 (``async with``)."""

    prefix = PATH

    def __init__(self, user: str = "user", password: str = "secret", *, port: int = 0,
                 clock: Clock | None = None, burst: int = 100, window: float = 10.0,
                 step_seconds: float = 10.0, max_body: int = 1024 * 1024,
                 host: str = "127.0.0.1", namespace: str = NS,
                 list_operation: str = "getAvailableReports",
                 report_operation: str = "getJobReport") -> None:
        super().__init__(host=host, port=port, max_body=max_body)
        self.user, self.password = user, password
        self.clock: Clock = clock or ManualClock()
        self.burst, self.window, self.step = burst, window, timedelta(seconds=step_seconds)
        self.jobs: dict[str, Job] = {}
        self.wsdl_requests = 0
        self.wsdl_status = 200  # anything else: the WSDL is unavailable
        self.extra_report_fields: dict[str, str] = {}  # elements the WSDL does not know
        self.namespace = namespace
        self.list_operation, self.report_operation = list_operation, report_operation
        self.wsdl_imports: list[str] = []  # schemaLocations a hostile WSDL imports
        self.wsdl_redirect: str | None = None  # where a hostile ?wsdl redirects to
        self.wsdl_doctype: str | None = None  # a DTD put before the WSDL's root
        self.xsd_requests = 0
        self._offset = timedelta()
        self._faulted: deque[Failure] = deque()
        self._numbers = itertools.count(1)

    # -- lifecycle -----------------------------------------------------------------------------
    def add_routes(self, router: web.UrlDispatcher) -> None:
        """The WSDL (``GET ?wsdl``) and the SOAP endpoint (``POST``) at ``/soap/v3``."""
        router.add_get(PATH, self._get)
        router.add_post(PATH, self._post)

    # -- test controls -------------------------------------------------------------------------
    def now(self) -> datetime:
        """The emulator's time: its clock plus whatever :meth:`advance` added."""
        return self.clock.now() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's time forward (job progress, rate-limit window)."""
        self._offset += timedelta(seconds=seconds)

    def fail_next(self, status: int = 503, times: int = 1, *, retry_after: float | None = None,
                  message: str = "Service temporarily unavailable",
                  fault: str | None = None) -> None:
        """Answer the next ``times`` SOAP calls with a plain HTTP error (``fault``: a
        ``soap:<fault>`` envelope with that HTTP status, as some SOAP gateways answer)."""
        if fault is None:
            self._failures.add(Failure(status, message, retry_after), times)
        else:
            self._faulted.extend([Failure(status, message, retry_after, code=fault)] * times)

    def fault_next(self, kind: str = "Server", message: str = "Internal error",
                   times: int = 1) -> None:
        """Answer the next ``times`` SOAP calls with a ``soap:<kind>`` fault (HTTP 500)."""
        self._failures.add(Failure(500, message, code=kind), times)

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """Make the next ``times`` SOAP calls answer only after ``seconds`` of real time."""
        self.slow_next(seconds, times)

    def set_status(self, job_id: str, recipient_id: str, status: str, text: str = "",
                   state: str | None = None) -> None:
        """Force a recipient's status (e.g. a value outside the documented vocabulary)."""
        final = status in ("SUCCESSFUL", "FAILED")
        for recipient in self.jobs[job_id].recipients:
            if recipient.recipient_id == recipient_id:
                recipient.override = (status, state or ("FINISHED" if final else "PROCESSING"),
                                      text)

    def operations(self) -> list[str]:
        """The operation of every SOAP call received, in order."""
        return [r.operation for r in self.requests]

    # -- HTTP ----------------------------------------------------------------------------------
    async def _get(self, request: web.Request) -> web.Response:
        if "xsd" in request.query:
            self.xsd_requests += 1
            index = request.query["xsd"]
            return web.Response(content_type="text/xml", text=(
                f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
                f'targetNamespace="urn:x-xsd-{index}"/>'))
        if "wsdl" not in request.query:
            return web.Response(status=404, text="Not found")
        self.wsdl_requests += 1
        if self.wsdl_status != 200:
            return web.Response(status=self.wsdl_status, text="WSDL unavailable")
        if self.wsdl_redirect:
            raise web.HTTPFound(self.wsdl_redirect)
        return web.Response(text=self.wsdl(), content_type="text/xml")

    def wsdl(self) -> str:
        """The WSDL this service publishes: its address, namespace and method names."""
        wsdl = (resources.files("alertline.providers.retarus") / "wsdl" / "retarus_voice_v3.wsdl")
        text = wsdl.read_text("utf-8").replace(
            'location="https://voice4a.retarus.com/soap/v3"', f'location="{self.base_url}"')
        text = text.replace(NS, self.namespace)
        text = text.replace("getAvailableReports", self.list_operation)
        text = text.replace("getJobReport", self.report_operation)
        imports = "".join(f'<xs:import namespace="{_schema_namespace(url)}" '
                          f'schemaLocation="{url}"/>' for url in self.wsdl_imports)
        text = text.replace('elementFormDefault="unqualified">',
                            f'elementFormDefault="unqualified">{imports}', 1)
        if self.wsdl_doctype:
            text = text.replace("?>", f"?>{self.wsdl_doctype}", 1)
        return text

    async def _post(self, request: web.Request) -> web.Response:
        await self.pause()
        if self._faulted:  # an HTTP error carrying a SOAP fault
            faulted = self._faulted.popleft()
            answer = self._fault(_Fault(faulted.text, "THROTTLED", str(faulted.code)))
            answer.set_status(faulted.status)
            answer.headers.update(self.retry_after_header(faulted.retry_after or None))
            return answer
        failure = self._failures.take()
        if failure is not None:
            if failure.code:
                return self._fault(_Fault(failure.text, "INTERNAL_ERROR", str(failure.code)))

            return web.Response(status=failure.status, text=failure.text,
                                headers=self.retry_after_header(failure.retry_after or None))
        wait = self._rate.admit(self.now().timestamp(), self.burst, self.window)
        if wait is not None:
            return web.Response(status=429, text="Too many requests",
                                headers=self.retry_after_header(max(1, round(wait))))
        try:
            body = await request.read()
            operation, element = self._parse(body)
            fields = _to_data(element) if len(element) else {}
            self.remember(ReceivedRequest(operation, fields, dict(request.headers)))
            answer = self._dispatch(operation, element, fields if isinstance(fields, dict) else {})
        except _Fault as fault:
            return self._fault(fault)
        return self._envelope(answer)

    def _parse(self, body: bytes) -> tuple[str, Any]:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                 huge_tree=False)
        try:
            root = etree.fromstring(body, parser)
        except etree.XMLSyntaxError:
            raise _Fault("Malformed XML", "MALFORMED_REQUEST") from None
        if root.getroottree().docinfo.doctype:
            raise _Fault("DTDs are not allowed", "MALFORMED_REQUEST")
        body_el = root.find(f"{{{SOAP_ENV}}}Body")
        if root.tag != f"{{{SOAP_ENV}}}Envelope" or body_el is None or not len(body_el):
            raise _Fault("Not a SOAP 1.1 envelope", "MALFORMED_REQUEST")
        namespace = etree.QName(body_el[0]).namespace
        if namespace != self.namespace:
            raise _Fault(f"Unexpected element {{{namespace or ''}}}{_local(body_el[0])}: this "
                         f"service's namespace is {self.namespace}", "UNKNOWN_OPERATION")
        return _local(body_el[0]), body_el[0]

    def _dispatch(self, operation: str, element: Any, fields: dict[str, Any]) -> Any:
        if operation == "getVersionInfo":
            return self._element("getVersionInfoResponse", VERSION)
        handlers = {"sendJob": self._send_job, self.report_operation: self._job_report,
                    self.list_operation: self._available_reports}
        if operation not in handlers:
            raise _Fault(f"Unknown operation {operation}", "UNKNOWN_OPERATION")
        names = [_local(c) for c in element if isinstance(c.tag, str)][:2]
        if names != ["username", "password"]:
            raise _Fault("username and password must be the first two parameters",
                         "AUTHENTICATION_FAILED")
        if fields.get("username") != self.user or fields.get("password") != self.password:
            raise _Fault("Authentication failed: invalid login id or password",
                         "AUTHENTICATION_FAILED")
        return handlers[operation](element, fields)

    # -- operations ----------------------------------------------------------------------------
    def _send_job(self, element: Any, fields: dict[str, Any]) -> Any:
        contents, recipients = fields.get("contents", []), fields.get("recipients", [])
        if not contents or not recipients:
            raise _Fault("Validation failed: contents and recipients are required",
                         "VALIDATION_FAILED")
        for content in contents:
            self._check_content(content if isinstance(content, dict) else {})
        caller_id, locale = fields.get("callerId"), fields.get("locale")
        if not caller_id or not locale or not LOCALE_RE.fullmatch(str(locale)):
            raise _Fault("Validation failed: callerId and locale (e.g. de_DE) are required",
                         "VALIDATION_FAILED")
        start = self.now()
        if fields.get("jobPeriod"):
            ok, begin = _period_start(str(fields["jobPeriod"]), daily=False)
            if not ok:
                raise _Fault(f"Validation failed: invalid jobPeriod {fields['jobPeriod']}",
                             "INVALID_PERIOD")
            start = max(start, begin or start)
        periods = list(fields.get("blackoutPeriods", []))
        for recipient in recipients:
            if not RECIPIENT_RE.fullmatch(str(recipient.get("recipientId", ""))):
                raise _Fault(f"Validation failed: invalid recipientId "
                             f"{recipient.get('recipientId')}", "INVALID_RECIPIENT")
            periods += recipient.get("blackoutPeriods", [])
        for period in periods:
            if not _period_start(str(period), daily=True)[0]:
                raise _Fault(f"Validation failed: invalid blackoutPeriod {period}",
                             "INVALID_PERIOD")
        options = {e.get("key"): e.get("value") for e in
                   (fields.get("options") or {}).get("entries", []) if isinstance(e, dict)}
        if options.get("duplicateDetection", "false") not in ("true", "false"):
            raise _Fault("Validation failed: duplicateDetection must be true or false",
                         "VALIDATION_FAILED")
        key = etree.tostring(element, method="c14n")
        if options.get("duplicateDetection") == "true" and any(
                job.key == key and self.now() - job.received < DUPLICATE_WINDOW
                for job in self.jobs.values()):
            raise _Fault("Duplicate job detected", "DUPLICATE_JOB")
        job_id = str(uuid.UUID(int=next(self._numbers)))
        self.jobs[job_id] = Job(
            job_id, self.now(), start,
            [Recipient(str(r["recipientId"]), str(r.get("callerId") or caller_id))
             for r in recipients], fields, fields.get("reference"), fields.get("costCenter"), key)
        return self._element("sendJobResponse", {"jobId": job_id})

    @staticmethod
    def _check_content(content: dict[str, Any]) -> None:
        kind = str(content.get("contentType") or "text/plain; charset=UTF-8")
        media = kind.split(";", maxsplit=1)[0].strip().lower()
        if media != "text/plain" and media not in WAV_TYPES:
            raise _Fault(f"Validation failed: unsupported contentType {kind}",
                         "INVALID_CONTENT")
        if not content.get("content") and not content.get("contentUrl"):
            raise _Fault("Validation failed: content or contentUrl is required",
                         "INVALID_CONTENT")
        if content.get("content"):
            try:
                raw = base64.b64decode(str(content["content"]), validate=True)
                charset = re.search(r"charset=([\w.:-]+)", kind, re.IGNORECASE)
                if media == "text/plain":
                    raw.decode(charset.group(1) if charset else "utf-8")
            except (binascii.Error, LookupError, UnicodeDecodeError):
                raise _Fault("Validation failed: content cannot be decoded",
                             "INVALID_CONTENT") from None

    def _job_report(self, element: Any, fields: dict[str, Any]) -> Any:
        job = self.jobs.get(str(fields.get("jobId", "")))
        if job is None:
            raise _Fault(f"Job not found: {fields.get('jobId')}", "JOB_NOT_FOUND")
        reports = [self._recipient_report(job, r) for r in job.recipients]
        statuses = [r["status"] for r in reports]
        finished = all(r["state"] == "FINISHED" for r in reports)
        state = ("PROCESSING" if not finished else "SUCCESSFUL"
                 if all(s == "SUCCESSFUL" for s in statuses) else "FAILED"
                 if all(s == "FAILED" for s in statuses) else "PARTIALLY SUCCESSFUL")
        answer = self._element(f"{self.report_operation}Response", {
            "jobId": job.job_id, "createTs": job.received.isoformat(),
            "status": "FINISHED" if finished else "PROCESSING", "state": state,
            "reference": job.reference, "costCenter": job.cost_center})
        for report in reports:
            etree_child(answer, "recipients", {**report, **self.extra_report_fields},
                        REQUIRED_REPORT_FIELDS)
        return answer

    def _recipient_report(self, job: Job, recipient: Recipient) -> dict[str, Any]:
        now, digit = self.now(), recipient.recipient_id[-1]
        elapsed = now - job.start
        base = {"recipientId": recipient.recipient_id, "callerId": recipient.caller_id,
                "lastTryTs": "", "callDuration": "0", "tryCount": "0"}
        if recipient.override:
            status, state, text = recipient.override
            return {**base, "status": status, "state": state, "statusText": text}
        if now < job.start:
            return {**base, "status": "SCHEDULED", "state": "PROCESSING",
                    "statusText": "Scheduled for the job period"}
        if elapsed < self.step:
            return {**base, "status": "PENDING", "state": "PROCESSING", "statusText": "Pending"}
        final, text, tries, duration = OUTCOMES.get(digit, ("", "", 0, None))
        # attempt k (1-based) calls during step 2k-1; a failed attempt before the last one
        # shows FAILED/PROCESSING during step 2k, until the retry
        step = int(elapsed / self.step)
        attempt = (step + 1) // 2
        tried = {**base, "tryCount": str(attempt),
                 "lastTryTs": (job.start + (2 * attempt - 1) * self.step).isoformat()}
        if not tries or step < 2 * tries:
            if step % 2 == 1 or not tries:
                return {**tried, "status": "TRANSMITTING", "state": "PROCESSING",
                        "statusText": "Calling"}
            return {**tried, "status": "FAILED", "state": "PROCESSING",
                    "statusText": "No answer, retry scheduled"}
        return {**base, "status": final, "state": "FINISHED", "statusText": text,
                "tryCount": str(tries), "callDuration": f"{duration:g}",
                "lastTryTs": (job.start + 2 * tries * self.step).isoformat()}

    def _available_reports(self, element: Any, fields: dict[str, Any]) -> Any:
        now = self.now()
        to_ts = _timestamp(str(fields["toTs"])) if fields.get("toTs") else now
        from_ts = (_timestamp(str(fields["fromTs"])) if fields.get("fromTs")
                   else (to_ts or now) - timedelta(days=14))
        if from_ts is None or to_ts is None:
            raise _Fault("Validation failed: fromTs/toTs must be ISO-8601", "INVALID_TIMESTAMP")
        if to_ts <= from_ts or to_ts - from_ts > timedelta(days=30):
            raise _Fault("Validation failed: toTs must be after fromTs, at most 30 days",
                         "INVALID_TIMESTAMP")
        try:
            offset, limit = int(fields.get("offset") or 0), int(fields.get("limit") or 100)
        except ValueError:
            raise _Fault("Validation failed: offset/limit", "VALIDATION_FAILED") from None
        if offset < 0 or limit < 1:
            raise _Fault("Validation failed: offset >= 0, limit >= 1", "VALIDATION_FAILED")
        wanted = {"true": True, "false": False}.get(str(fields.get("open", "")).lower())
        ids = []
        for job in sorted(self.jobs.values(), key=lambda j: j.received):
            is_open = any(self._recipient_report(job, r)["state"] != "FINISHED"
                          for r in job.recipients)
            if from_ts <= job.received <= to_ts and wanted in (None, is_open):
                ids.append(job.job_id)
        answer = self._element(f"{self.list_operation}Response", {})
        for job_id in ids[offset:offset + limit]:
            etree.SubElement(answer, "jobIds").text = job_id
        return answer

    # -- answers -------------------------------------------------------------------------------
    def _element(self, name: str, fields: dict[str, Any]) -> Any:
        return etree_element(name, fields, self.namespace)

    @staticmethod
    def _envelope(payload: Any, status: int = 200) -> web.Response:
        envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV, "tns": NS})
        etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body").append(payload)
        return web.Response(body=etree.tostring(envelope, xml_declaration=True, encoding="utf-8"),
                            status=status, content_type="text/xml", charset="utf-8")

    def _fault(self, fault: _Fault) -> web.Response:
        element = etree.Element(f"{{{SOAP_ENV}}}Fault")
        etree.SubElement(element, "faultcode").text = f"soap:{fault.kind}"
        etree.SubElement(element, "faultstring").text = fault.message
        detail = etree.SubElement(etree.SubElement(element, "detail"), f"{{{NS}}}voiceFault")
        etree.SubElement(detail, "code").text = fault.code
        etree.SubElement(detail, "message").text = fault.message
        return self._envelope(element, status=500)


def etree_element(name: str, fields: dict[str, Any], namespace: str = NS) -> Any:
    """A response wrapper element ``tns:<name>`` with unqualified children."""
    element = etree.Element(f"{{{namespace}}}{name}")
    for key, value in fields.items():
        if value is not None:
            etree.SubElement(element, key).text = str(value)
    return element


def etree_child(parent: Any, name: str, fields: dict[str, Any],
                required: frozenset[str] = frozenset()) -> None:
    """An unqualified complex child ``<name>`` of ``parent``; ``required`` ones even if empty."""
    child = etree.SubElement(parent, name)
    for key, value in fields.items():
        if value not in (None, "") or key in required:
            etree.SubElement(child, key).text = str(value or "")


def main(argv: list[str] | None = None) -> None:
    """Run the emulator standalone on real time until interrupted."""
    parser = standalone_parser(__doc__, login=True)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--step-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    emulator = RetarusVoiceEmulator(args.user, args.password, host=args.host, port=args.port,
                                    clock=SystemClock(), burst=args.burst,
                                    step_seconds=args.step_seconds)
    emulator.run_standalone("Retarus Voice SOAP emulator: {url} (WSDL {url}?wsdl)")


if __name__ == "__main__":
    main()
