"""Emulator of Retarus SMS for Applications REST API v1 (seed retarus-sms-rest-v1.txt).

Serves ``POST /jobs``, ``GET /jobs``, ``GET /jobs/{jobId}``, ``GET /sms?jobId=`` and
``GET /version`` under ``/rest/v1`` on 127.0.0.1, with HTTP Basic auth on every call (401, no
content). Validation as documented: 400 for a bad qos, encoding, invalidCharacters, src, jobPeriod
or blackout period, or a customerRef over 64 characters; 422 for no messages, more than 3,000
recipients, or characters the job's encoding cannot carry under REFUSE (the account default
here, ``default_invalid_characters``); 409 for a duplicate within 10 minutes when
``duplicateDetection`` is on; 429 (no content) once ``rate_limit`` = (N jobs, per window
seconds; the documented window is 10 s) is used up, with a ``Retry-After`` header only when
``rate_limit_retry_after`` is on (the seed promises none). Error bodies are empty ("No
content") unless ``error_bodies=True``.

Each recipient walks through (processStatus, status) stages chosen by the last digit of ``dst``
(``OUTCOMES``; statusRequested picks SUC_FIN and RUNNING, else SUC_ACC): one stage per
``step_seconds`` of the emulator's clock from the job's start (jobPeriod), or per :meth:`advance`.
Everything per request is O(1) in the number of stored jobs (listing uses bisect).

Standalone: ``python -m tests.emulators.retarus_sms --port 8080 --user U --password P``.
"""

from __future__ import annotations

import base64
import bisect
import itertools
import json
import math
import re
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from alertline.clock import Clock, SystemClock

from ._base import EmulatorServer, Failure, standalone_parser

PREFIX = "/rest/v1"
RATE_WINDOW = 10.0  # "429 | Too many requests in the last 10 seconds (retry later)"
MAX_RECIPIENTS = 3000
DUPLICATE_WINDOW = timedelta(minutes=10)
ENUMS = {"qos": {"EXPRESS", "NORMAL"}, "encoding": {"STANDARD", "UTF-16"},
         "invalidCharacters": {"REFUSE", "REPLACE", "TO_UTF16", "TRANSLITERATE"}}
SENDER_RE = re.compile(r"\+?[0-9]{1,20}|[a-zA-Z0-9 !\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,11}")
JOB_ID_RE = re.compile(r"J\..{18,38}")
GSM_7BIT = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNO"
               "PQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€\f")
GSM_EXTENSION = set("^{}\\[~]|€\f")
REASONS = {"SUC_FIN": "message_state:DELIVERED [00000002] (Final) (Message is delivered to "
                      "destination.)",
           "SUC_ACC": "Accepted.", "INVALID_DST": "Invalid destination address.",
           "BLOCKED": "Destination is blocked.", "TIMEOUT": "Validity period expired.",
           "CON_ERR": "Connection to the carrier failed.",
           "FAILED_FIN": "message_state:UNDELIVERABLE (Final)",
           "NOT_ACC_FIN": "Not accepted by the carrier.", "SEND_ERR": "Internal send error.",
           "STATUS_ERR": "Internal error while querying the delivery notification."}
VERSION = {"buildNumber": 39, "buildTimestamp": "2018-03-26 17:21:55 +0200", "majorVersion": 2015,
           "minorVersion": 10, "versionInfo": "REST Interface", "message": "1st version."}

Stage = tuple[str, str]  # (processStatus, status); status "" = none
OPEN, RUNNING = ("OPEN", ""), ("RUNNING", "SUC_ACC")


def _done(status: str) -> Stage:
    return ("DONE", status)


# last digit of dst -> (stages without statusRequested, stages with statusRequested)
OUTCOMES: dict[str, tuple[tuple[Stage, ...], tuple[Stage, ...]]] = {
    **{d: ((OPEN, _done("SUC_ACC")), (OPEN, RUNNING, _done("SUC_FIN"))) for d in "0123456789"},
    "1": ((OPEN, _done("INVALID_DST")),) * 2,
    "2": ((OPEN, _done("BLOCKED")),) * 2,
    "3": ((OPEN, _done("SUC_ACC")), (OPEN, RUNNING, _done("TIMEOUT"))),
    "4": ((OPEN, ("OPEN", "CON_ERR"), _done("CON_ERR")),) * 2,
    "5": ((OPEN, _done("SUC_ACC")), (OPEN, RUNNING, _done("FAILED_FIN"))),
    "6": ((OPEN, _done("NOT_ACC_FIN")),) * 2,
    "7": ((OPEN, _done("SEND_ERR")),) * 2,
    "9": ((OPEN,),) * 2,
}


@dataclass(slots=True)
class Recipient:
    """One SMS of a job."""

    sms_id: str
    dst: str
    customer_ref: str
    stages: tuple[Stage, ...]
    override: Stage | None = None
    text: str = ""
    parts: int = 1


@dataclass(slots=True)
class Job:
    """One accepted job: its options as stored, and its recipients."""

    job_id: str
    options: dict[str, Any]
    receipt: datetime
    start: datetime
    recipients: list[Recipient]
    steps: int = 0


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """A request as received: method, path, query, JSON body, status answered, client port."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0
    peer_port: int | None = None


@dataclass(slots=True)
class _State:
    jobs: dict[str, Job] = field(default_factory=dict)
    times: list[datetime] = field(default_factory=list)   # receipt times, ascending
    order: list[str] = field(default_factory=list)        # job ids in the same order
    duplicates: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    duplicate_expiry: deque[tuple[datetime, str]] = field(default_factory=deque)
    counts: Counter[str] = field(default_factory=Counter)


RateLimitSetting = int | tuple[int] | tuple[int, float] | None


def rate_limit_of(value: RateLimitSetting) -> tuple[int, float] | None:
    """``(jobs, window seconds)`` from ``N``, ``(N,)`` or ``(N, seconds)``: N alone means the
    documented 10-second window."""
    if value is None:
        return None
    if isinstance(value, int):
        value = (value,)
    jobs = int(value[0])
    window = float(value[1]) if len(value) > 1 else RATE_WINDOW
    if jobs < 1 or window <= 0:
        raise ValueError(f"rate_limit needs N >= 1 jobs per window > 0 s, got {value!r}")
    return jobs, window


class RateLimitSwitch:
    """The "admit N jobs per window" switch of both Retarus SMS emulators."""

    _rate_limit: tuple[int, float] | None = None

    @property
    def rate_limit(self) -> tuple[int, float] | None:
        """``(N, window)``: at most N jobs admitted in any window seconds; None = unlimited."""
        return self._rate_limit

    @rate_limit.setter
    def rate_limit(self, value: RateLimitSetting) -> None:
        self._rate_limit = rate_limit_of(value)


def parse_rate_limit(text: str) -> tuple[int, float]:
    """The command line's ``N`` or ``N/SECONDS``."""
    jobs, _, window = text.partition("/")
    limit = rate_limit_of((int(jobs), float(window)) if window else int(jobs))
    assert limit is not None
    return limit


class _Reject(Exception):
    def __init__(self, status: int, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


class RetarusSmsEmulator(RateLimitSwitch, EmulatorServer[ReceivedRequest]):
    """A stateful, in-process Retarus SMS REST v1 server for tests, manual trials and benchmarks."""

    prefix = PREFIX

    def __init__(self, *, user: str = "user", password: str = "secret", host: str = "127.0.0.1",
                 port: int = 0, clock: Clock | None = None, step_seconds: float | None = 1.0,
                 rate_limit: RateLimitSetting = None, rate_limit_retry_after: bool = False,
                 error_bodies: bool = False, list_format: str = "objects",
                 default_invalid_characters: str = "REFUSE", max_ref_length: int | None = 64,
                 record: bool = True) -> None:
        super().__init__(host=host, port=port, record=record, max_body=16 * 1024 * 1024)
        self.user, self.password = user, password
        self.clock: Clock = clock or SystemClock()
        self.step_seconds = step_seconds
        self._rate_limit = rate_limit_of(rate_limit)
        self.rate_limit_retry_after = rate_limit_retry_after
        self.rejected_429 = 0  # every 429 answered (rate limit or injected)
        self.error_bodies = error_bodies
        self.list_format = list_format  # "objects", "strings" or "reports"
        self.default_invalid_characters = default_invalid_characters
        # customerRef: "recommended max. 64" (PROVIDERS.md A; the Go SDK says 70): held to 64
        self.max_ref_length = max_ref_length
        self.outcomes = dict(OUTCOMES)
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._state = _State()
        self._ids = itertools.count(1)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """``/jobs``, ``/jobs/{jobId}``, ``/sms`` and ``/version`` under ``/rest/v1``."""
        router.add_post(f"{PREFIX}/jobs", self._post_job)
        router.add_get(f"{PREFIX}/jobs", self._list_jobs)
        router.add_get(f"{PREFIX}/jobs/{{job_id}}", self._get_job)
        router.add_get(f"{PREFIX}/sms", self._get_sms)
        router.add_get(f"{PREFIX}/version", self._version)

    # --- control API for tests ---------------------------------------------------------------
    @property
    def jobs(self) -> dict[str, Job]:
        """Accepted jobs by id."""
        return self._state.jobs

    def count(self, method: str, route: str) -> int:
        """Requests that hit ``route``: ``("POST", "/jobs")``, ``("GET", "/jobs/{id}")``..."""
        return self._state.counts[f"{method} {route}"]

    def fail_next(self, status: int = 500, *, count: int = 1, method: str | None = None,
                  path: str | None = None, retry_after: float | None = None) -> None:
        """Answer the next ``count`` matching requests with ``status`` (after the auth check)."""
        self._failures.add(Failure(status, "injected failure", retry_after, method, path), count)

    def seed_jobs(self, count: int, *, dst: str = "+491709999990",
                  text: str = "an earlier alert") -> list[str]:
        """``count`` jobs of one recipient each, as if accepted now (a busy account's history)."""
        options = self._stored_options({})
        return [self._store_job(options, [{"text": text, "recipients": [
            {"dst": dst, "customerRef": f"seed-{index}"}]}], self.clock.now()).job_id
            for index in range(count)]

    def advance(self, job_id: str | None = None, steps: int = 1) -> None:
        """Move one job (or every job) ``steps`` stages on, without waiting."""
        for job in [self._state.jobs[job_id]] if job_id else self._state.jobs.values():
            job.steps += steps

    def set_status(self, job_id: str, dst: str, process_status: str, status: str = "") -> None:
        """Force one recipient's (processStatus, status)."""
        for recipient in self._state.jobs[job_id].recipients:
            if recipient.dst == dst:
                recipient.override = (process_status, status)

    def stage_of(self, job: Job, recipient: Recipient) -> Stage:
        """Where ``recipient`` stands now."""
        if recipient.override is not None:
            return recipient.override
        index = job.steps
        if self.step_seconds:
            elapsed = (self.clock.now() - job.start).total_seconds()
            index += max(0, int(elapsed // self.step_seconds))
        return recipient.stages[min(index, len(recipient.stages) - 1)]

    # --- handlers ----------------------------------------------------------------------------
    async def _post_job(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "/jobs", self._create_job)

    async def _list_jobs(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "/jobs", self._job_list)

    async def _get_job(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "/jobs/{id}", self._job_report)

    async def _get_sms(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "/sms", self._recipient_reports)

    async def _version(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "/version", lambda _req, _body: (200, VERSION))

    async def _serve(self, request: web.Request, route: str, handle: Any) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        status, payload, headers = 200, None, {}
        try:
            if request.headers.get("Authorization") != self._auth:
                raise _Reject(401, "Authentication failed")
            failure = self._failures.take(request.method, route)
            if failure is not None:
                raise _Reject(failure.status, failure.text, failure.retry_after)
            if request.method == "POST":
                self._admit_job()
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    raise _Reject(400, "body is not JSON") from None
            status, payload = handle(request, body)
        except _Reject as rejection:
            status = rejection.status
            headers = self.retry_after_header(rejection.retry_after)
            if self.error_bodies:
                payload = {"code": status, "message": rejection.detail}
        self._state.counts[f"{request.method} {route}"] += 1
        self.rejected_429 += status == 429
        if self.record:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            self.remember(ReceivedRequest(
                request.method, request.path, dict(request.query), body, status,
                peer[1] if peer else None))
        await self.pause()
        if payload is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(payload, status=status, headers=headers)

    def _admit_job(self) -> None:
        if self._rate_limit is None:
            return
        jobs, window = self._rate_limit
        wait = self._rate.admit(self.clock.now().timestamp(), jobs, window)
        if wait is not None:
            hint = float(max(1, math.ceil(wait))) if self.rate_limit_retry_after else None
            raise _Reject(429, "Too many requests in the last 10 seconds (retry later)", hint)

    def _create_job(self, _request: web.Request, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            raise _Reject(400, "JobRequest must be a JSON object")
        options = self._stored_options(body.get("options") or {})
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Reject(422, "no messages")
        total = sum(len(m.get("recipients") or []) for m in messages if isinstance(m, dict))
        if total > MAX_RECIPIENTS:
            raise _Reject(422, f"{total} recipients; at most {MAX_RECIPIENTS} per job")
        for message in messages:
            self._check_message(message, options)
        now = self.clock.now()
        key = json.dumps(body, sort_keys=True, separators=(",", ":"))
        if options["duplicateDetection"]:
            self._expire_duplicates(now)
            if key in self._state.duplicates:
                raise _Reject(409, "Duplicate job (detected by enabled duplicate-detection)")
        job = self._store_job(options, messages, now)
        if options["duplicateDetection"]:
            self._state.duplicates[key] = (now, job.job_id)
            self._state.duplicate_expiry.append((now, key))
        return 201, {"jobId": job.job_id}

    def _stored_options(self, options: Any) -> dict[str, Any]:
        if not isinstance(options, dict):
            raise _Reject(400, "options must be an object")
        # null is absent, as for the Java service (Retarus' Python SDK may send explicit nulls)
        for name, allowed in ENUMS.items():
            if options.get(name) is not None and str(options[name]).upper() not in allowed:
                raise _Reject(400, f"invalid {name}: {options[name]!r}")
        src = options.get("src")
        if src is not None and not (isinstance(src, str) and SENDER_RE.fullmatch(src)):
            raise _Reject(400, f"invalid src: {src!r}")
        if options.get("jobPeriod") is not None and _ts(options["jobPeriod"]) is None:
            raise _Reject(400, f"invalid jobPeriod: {options['jobPeriod']!r}")
        _check_periods(options.get("blackoutPeriods"))
        self._check_ref(options.get("customerRef"))
        try:
            validity = int(options.get("validityMin") or 0)
            parts = int(options.get("maxParts") or 1)
        except (TypeError, ValueError):
            raise _Reject(400, "validityMin and maxParts must be integers") from None
        return {
            "src": src or "retarus",
            "encoding": str(options.get("encoding") or "STANDARD").upper(),
            "billcode": options.get("billcode"),
            "statusRequested": bool(options.get("statusRequested", False)),
            "flash": bool(options.get("flash", False)),
            "validityMin": 2880 if validity == 0 else max(5, min(2880, validity)),  # clamped
            "maxParts": max(1, min(20, parts)) if options.get("maxParts") else None,
            "customerRef": options.get("customerRef"),
            "qos": str(options.get("qos") or "NORMAL").upper(),
            "invalidCharacters": str(options.get("invalidCharacters")
                                     or self.default_invalid_characters).upper(),
            "jobPeriod": options.get("jobPeriod"),
            "duplicateDetection": bool(options.get("duplicateDetection", False)),
            "blackoutPeriods": options.get("blackoutPeriods") or [],
        }

    def _check_ref(self, ref: Any) -> None:
        if ref is None:
            return
        if not isinstance(ref, str) or (self.max_ref_length is not None
                                        and len(ref) > self.max_ref_length):
            raise _Reject(400, f"customerRef longer than {self.max_ref_length} characters")

    def _check_message(self, message: Any, options: dict[str, Any]) -> None:
        if not isinstance(message, dict) or not message.get("text"):
            raise _Reject(422, "message without text")
        recipients = message.get("recipients")
        if not isinstance(recipients, list) or not recipients:
            raise _Reject(422, "message without recipients")
        for recipient in recipients:
            if not isinstance(recipient, dict) or not recipient.get("dst"):
                raise _Reject(422, "recipient without dst")
            _check_periods(recipient.get("blackoutPeriods"))
            self._check_ref(recipient.get("customerRef"))
        if options["invalidCharacters"] == "REFUSE":
            bad = _uncarried(str(message["text"]), options["encoding"])
            if bad:
                raise _Reject(422, f"invalid characters: {bad!r}")

    def _store_job(self, options: dict[str, Any], messages: list[Any], now: datetime) -> Job:
        job_id = self._new_id("J", now)
        start = max(now, _ts(options["jobPeriod"]) or now)
        index = 1 if options["statusRequested"] else 0
        recipients = [
            Recipient(sms_id=self._new_id("S", now), dst=r["dst"],
                      customer_ref=r.get("customerRef") or r["dst"],
                      stages=self.outcomes.get(str(r["dst"])[-1:], OUTCOMES["0"])[index],
                      text=m["text"], parts=sms_parts(m["text"], options["encoding"],
                                                      options["maxParts"]))
            for m in messages for r in m["recipients"]]
        job = Job(job_id, options, now, start, recipients)
        self._state.jobs[job_id] = job
        self._state.times.append(now)
        self._state.order.append(job_id)
        return job

    def _expire_duplicates(self, now: datetime) -> None:
        expiry = self._state.duplicate_expiry
        while expiry and now - expiry[0][0] >= DUPLICATE_WINDOW:
            _, key = expiry.popleft()
            if key in self._state.duplicates and \
                    now - self._state.duplicates[key][0] >= DUPLICATE_WINDOW:
                del self._state.duplicates[key]

    def _job_list(self, request: web.Request, _body: Any) -> tuple[int, Any]:
        query = request.query
        if _query_bool(query, "jobIdsOnly", True) is not True:
            raise _Reject(400, "jobIdsOnly must be true")
        start, end = _ts(query.get("fromTs")), _ts(query.get("toTs"))
        if start is None or end is None or end <= start or end - start > timedelta(days=30):
            raise _Reject(400, "fromTs/toTs missing, unordered or more than 30 days apart")
        try:
            limit, offset = int(query.get("limit", "100")), int(query.get("offset", "0"))
        except ValueError:
            raise _Reject(400, "limit and offset must be integers") from None
        if not 0 < limit <= 1000 or offset < 0:
            raise _Reject(400, "0 < limit <= 1000 and offset >= 0")
        wanted = _query_bool(query, "open", None)
        lo = bisect.bisect_left(self._state.times, start)
        hi = bisect.bisect_right(self._state.times, end)
        ids = [j for j in self._state.order[lo:hi]
               if wanted is None or self._is_open(self._state.jobs[j]) == wanted]
        page = ids[offset:offset + limit]
        if self.list_format == "strings":
            return 200, page
        if self.list_format == "reports":
            return 200, [self._report(self._state.jobs[j]) for j in page]
        return 200, [{"jobId": j} for j in page]

    def _job_report(self, request: web.Request, _body: Any) -> tuple[int, Any]:
        job = self._state.jobs.get(request.match_info["job_id"])
        if job is None:
            raise _Reject(404, "unknown job")
        return 200, self._report(job)

    def _recipient_reports(self, request: web.Request, _body: Any) -> tuple[int, Any]:
        job_id = request.query.get("jobId")
        if not job_id or not JOB_ID_RE.fullmatch(job_id):
            raise _Reject(400, "No job-id given")
        job = self._state.jobs.get(job_id)
        if job is None:
            raise _Reject(404, "unknown job")
        if self.clock.now() < job.start:
            # seed: "201 | Send job successful | No content"; read (inferred) as a job that is
            # accepted but has no recipient report yet, e.g. one waiting for its jobPeriod
            return 201, None
        return 200, [self._recipient_json(job, r) for r in job.recipients]

    def _is_open(self, job: Job) -> bool:
        return any(self.stage_of(job, r)[0] in ("OPEN", "RUNNING") for r in job.recipients)

    def _report(self, job: Job) -> dict[str, Any]:
        opts = job.options
        report = {"jobId": job.job_id, "src": opts["src"], "encoding": opts["encoding"].lower(),
                  "billcode": opts["billcode"], "statusRequested": opts["statusRequested"],
                  "flash": opts["flash"], "validityMin": opts["validityMin"],
                  "customerRef": opts["customerRef"], "qos": opts["qos"],
                  "receiptTs": _iso(job.receipt),
                  "recipientIds": [r.sms_id for r in job.recipients]}
        if not self._is_open(job):
            report["finishedTs"] = _iso(self._finished_at(job))
        return {key: value for key, value in report.items() if value is not None}

    def _recipient_json(self, job: Job, recipient: Recipient) -> dict[str, Any]:
        process, status = self.stage_of(job, recipient)
        out: dict[str, Any] = {"smsId": recipient.sms_id, "dst": recipient.dst,
                               "processStatus": process}
        if status:
            out["status"] = status
        out["customerRef"] = recipient.customer_ref
        if status:
            out["reason"] = REASONS.get(status, status)
        if process != "OPEN" or status:
            out["sentTs"] = _iso(job.start + timedelta(seconds=self.step_seconds or 0))
        if process not in ("OPEN", "RUNNING"):
            out["finishedTs"] = _iso(self._finished_at(job))
        return out

    def _finished_at(self, job: Job) -> datetime:
        return min(self.clock.now(), job.start + timedelta(seconds=2 * (self.step_seconds or 0)))

    def _new_id(self, prefix: str, now: datetime) -> str:
        return (f"{prefix}.{now:%Y%m%d-%H%M%S}.{now.microsecond // 1000:03d}"
                f"-0emu{next(self._ids):014d}")


def _query_bool(query: Any, name: str, blank: bool | None) -> bool | None:
    """A boolean query parameter as the Java service reads one: ``true``/``false`` in any case
    (Retarus' Python SDK sends ``True``); absent or blank gives ``blank``; other words are 400."""
    text = str(query.get(name, "")).strip()
    if not text:
        return blank
    if text.lower() not in ("true", "false"):
        raise _Reject(400, f"{name} must be true or false, not {text!r}")
    return text.lower() == "true"


def _uncarried(text: str, encoding: str) -> str:
    """The characters ``encoding`` cannot carry: outside GSM 03.38 for STANDARD; for UTF-16
    only lone surrogates (JSON can smuggle them in as ``\\ud83d``)."""
    if encoding == "STANDARD":
        return "".join(sorted(set(text) - GSM_7BIT))
    return "".join(sorted({c for c in text if 0xD800 <= ord(c) <= 0xDFFF}))


def sms_parts(text: str, encoding: str, max_parts: int | None) -> int:
    """The parts Retarus sends (and bills) for ``text``: 160/153 septets (extension characters
    two) or 70/67 UTF-16 code units, clamped to ``maxParts`` ("longer text is truncated")."""
    if encoding == "STANDARD":
        units, single, per_part = sum(1 + (c in GSM_EXTENSION) for c in text), 160, 153
    else:
        units, single, per_part = len(text.encode("utf-16-le", "surrogatepass")) // 2, 70, 67
    parts = 1 if units <= single else math.ceil(units / per_part)
    return parts if max_parts is None else min(parts, max_parts)


def _ts(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _check_periods(periods: Any) -> None:
    if periods is None:
        return
    if not isinstance(periods, list):
        raise _Reject(400, "blackoutPeriods must be a list")
    for period in periods:
        parts = period.split("/") if isinstance(period, str) else []
        if len(parts) != 2 or _ts(parts[0]) is None or _ts(parts[1]) is None:
            raise _Reject(400, f"invalid blackout period: {period!r}")


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds")


def main(argv: list[str] | None = None) -> None:
    """Run the emulator standalone until interrupted; jobs advance on real time."""
    parser = standalone_parser("Retarus SMS REST v1 emulator", login=True)
    parser.add_argument("--step", type=float, default=5.0, help="seconds per recipient stage")
    parser.add_argument("--rate-limit", type=parse_rate_limit, default=None, metavar="N[/SECONDS]",
                        help="admit N jobs per window (default window: the documented 10 s)")
    parser.add_argument("--rate-limit-retry-after", action="store_true",
                        help="send Retry-After with a 429 (the seed promises none)")
    parser.add_argument("--error-bodies", action="store_true", help='{"code","message"} bodies')
    parser.add_argument("--no-record", action="store_true", help="do not keep every request")
    args = parser.parse_args(argv)
    emulator = RetarusSmsEmulator(
        user=args.user, password=args.password, host=args.host, port=args.port,
        step_seconds=args.step, rate_limit=args.rate_limit,
        rate_limit_retry_after=args.rate_limit_retry_after,
        error_bodies=args.error_bodies, record=not args.no_record)
    emulator.run_standalone("Retarus SMS REST v1 emulator on {url}")


if __name__ == "__main__":
    main()
