"""Emulator of the Retarus SMS for Applications HTTP Simple interface (seed retarus-sms-http.txt).

Serves ``POST /sms`` and ``GET /reports`` under ``/httpsimple/v1`` on 127.0.0.1. Parameters are
read from the query string, an urlencoded body or a multipart body (query and body combine).
``user``/``pass`` are enforced on every call (401). Each job walks through a list of
(ProcessStatus, Status) stages chosen by the last digit of ``dst`` (see ``OUTCOMES``): one stage per
``step_seconds`` of the emulator's clock, or per :meth:`advance` call.

``rate_limit`` = (N jobs, per window seconds) answers ``POST /sms`` beyond N jobs in the window
with 429 and no content, as the REST interface documents (the HTTP Simple seed lists no 429: the
switch models the same account limit); ``Retry-After`` only with ``rate_limit_retry_after``.

Answer formats are not in the seed (PROVIDERS.md B): by default ``201 text/plain`` with the bare job
id, and ``200 text/plain`` ``"<ProcessStatus> <Status>"`` for reports; ``answer_format="json"``
switches both to JSON. Error bodies are empty ("No content") unless ``error_bodies=True``.

Standalone: ``python -m tests.emulators.retarus_sms_http --port 8080 --user U --password P``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from alertline.clock import Clock, SystemClock

from ._base import EmulatorServer, Failure, standalone_parser
from .retarus_sms import (
    GSM_7BIT,
    SENDER_RE,
    RateLimitSetting,
    RateLimitSwitch,
    parse_rate_limit,
    rate_limit_of,
    sms_parts,
)

PREFIX = "/httpsimple/v1"

# the sender id rule (SENDER_RE) is the REST interface's options.src rule (PROVIDERS.md A/B)
DST_RE = re.compile(r"(\+|00)?[0-9]{3,20}")
DN_VALUES = {"true": True, "false": False, "on": True, "off": False, "yes": True, "no": False,
             "1": True, "0": False}
QOS_VALUES = {"normal", "express"}
REASONS = {
    400: "One or more parameters are invalid. Mandatory parameters might be missing.",
    401: "Authentication information is missing or invalid.",
    429: "Too many requests in the last 10 seconds (retry later)",
    500: "Internal Server Error. Please try again later or contact Retarus support.",
}


@dataclass(frozen=True, slots=True)
class Stage:
    """One (ProcessStatus, Status) pair of the seed's status table."""

    process_status: str
    status: str = ""

    @property
    def final(self) -> bool:
        """Whether the job cannot change any more."""
        return self.process_status in ("DONE", "CANCELED", "KILL")

    def text(self) -> str:
        """The plain-text report line."""
        return f"{self.process_status} {self.status}".strip()


OPEN = Stage("OPEN")
RETRY = Stage("OPEN", "CON_ERR")
RUNNING = Stage("RUNNING", "SUC_ACC")


def _done(status: str) -> Stage:
    return Stage("DONE", status)


def _both(*stages: Stage) -> tuple[tuple[Stage, ...], tuple[Stage, ...]]:
    return stages, stages


# last digit of dst -> (stages without delivery notification, stages with dn=true); the seed marks
# SUC_FIN, TIMEOUT, FAILED_FIN and STATUS_ERR as statusRequested=True only, so without dn they
# end in SUC_ACC. 9 never becomes final.
OUTCOMES: dict[str, tuple[tuple[Stage, ...], tuple[Stage, ...]]] = {
    "0": ((OPEN, _done("SUC_ACC")), (OPEN, RUNNING, _done("SUC_FIN"))),
    "1": _both(OPEN, _done("INVALID_DST")),
    "2": _both(OPEN, _done("BLOCKED")),
    "3": ((OPEN, _done("SUC_ACC")), (OPEN, RUNNING, _done("TIMEOUT"))),
    "4": _both(OPEN, RETRY, _done("CON_ERR")),
    "5": ((OPEN, _done("SUC_ACC")), (OPEN, RUNNING, _done("FAILED_FIN"))),
    "6": _both(OPEN, RETRY, _done("NOT_ACC_FIN")),
    "7": _both(OPEN, _done("SEND_ERR")),
    "8": ((OPEN, _done("SUC_ACC")), (OPEN, RUNNING, _done("STATUS_ERR"))),
    "9": _both(OPEN),
}


@dataclass(slots=True)
class Job:
    """One accepted SMS job and where it stands."""

    job_id: str
    params: dict[str, str]
    created: float
    stages: tuple[Stage, ...]
    steps: int = 0
    override: Stage | None = None
    encoding: str = "STANDARD"
    parts: int = 1


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """What the emulator received: method, path, query and body parameters, body kind."""

    method: str
    path: str
    query: dict[str, str]
    body: dict[str, str]
    body_kind: str  # "none", "urlencoded" or "multipart"

    @property
    def params(self) -> dict[str, str]:
        """Query and body parameters combined (the body wins)."""
        return {**self.query, **self.body}


class RetarusSmsHttpEmulator(RateLimitSwitch, EmulatorServer[ReceivedRequest]):
    """A stateful, in-process Retarus HTTP Simple server for tests and manual trials."""

    prefix = PREFIX

    def __init__(self, *, user: str = "user", password: str = "secret",
                 host: str = "127.0.0.1", port: int = 0, clock: Clock | None = None,
                 step_seconds: float | None = 1.0, rate_limit: RateLimitSetting = None,
                 rate_limit_retry_after: bool = False, answer_format: str = "text",
                 error_bodies: bool = False,
                 unknown_job_status: int = 404, unknown_job_body: str = "unknown job",
                 refuse_non_gsm: bool = False) -> None:
        super().__init__(host=host, port=port)
        self.user = user
        self.password = password
        self.clock: Clock = clock or SystemClock()
        self.step_seconds = step_seconds
        self._rate_limit = rate_limit_of(rate_limit)
        self.rate_limit_retry_after = rate_limit_retry_after
        self.rejected_429 = 0  # every 429 answered (rate limit or injected)
        self.answer_format = answer_format
        self.error_bodies = error_bodies
        self.unknown_job_status = unknown_job_status
        self.unknown_job_body = unknown_job_body
        # the seed has no encoding parameter and no 422: Unicode text is sent as UTF-16 (as a
        # phone would); an account that refuses it answers 400 (inferred, off by default)
        self.refuse_non_gsm = refuse_non_gsm
        self.jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """``POST /sms`` and ``GET /reports`` under ``/httpsimple/v1``."""
        router.add_post(f"{PREFIX}/sms", self._send_sms)
        router.add_get(f"{PREFIX}/reports", self._report)

    # --- control API for tests ---------------------------------------------------------------
    def fail_next(self, status: int = 500, *, count: int = 1, path: str | None = None,
                  body: str = "", retry_after: float | None = None) -> None:
        """Answer the next ``count`` requests (to ``path``, e.g. "/sms") with ``status``."""
        self._failures.add(Failure(status, body, retry_after, path=path), count)

    def advance(self, job_id: str | None = None, steps: int = 1) -> None:
        """Move one job (or every job) ``steps`` stages forward."""
        for job in [self.jobs[job_id]] if job_id else list(self.jobs.values()):
            job.steps += steps

    def set_status(self, job_id: str, process_status: str, status: str = "") -> None:
        """Force a job into any (ProcessStatus, Status) pair, e.g. a row no digit produces."""
        self.jobs[job_id].override = Stage(process_status, status)

    def cancel(self, job_id: str) -> bool:
        """Cancel a job like the EAS portal would; False if it is already final."""
        stage = self.status_of(job_id)
        if stage.final:
            return False
        if stage.process_status == "RUNNING":
            self.set_status(job_id, "KILL", stage.status)
        elif stage.status:
            self.set_status(job_id, "CANCELED", "NOT_ACC_REC")
        else:
            self.set_status(job_id, "CANCELED")
        return True

    def status_of(self, job_id: str) -> Stage:
        """A job's current stage at the emulator's time."""
        job = self.jobs[job_id]
        if job.override is not None:
            return job.override
        index = job.steps
        if self.step_seconds:
            elapsed = self.clock.now().timestamp() - job.created
            index += int(elapsed // self.step_seconds)
        return job.stages[min(index, len(job.stages) - 1)]

    # --- HTTP handlers ---------------------------------------------------------------------
    async def _send_sms(self, request: web.Request) -> web.Response:
        params, problem = await self._admit(request)
        if problem is not None:
            return problem
        invalid = self._invalid_sms(params)
        if invalid:
            return self._error(400, invalid)
        dn = DN_VALUES[params.get("dn", "false").strip().lower()]
        digit = params["dst"].strip()[-1]
        text = params["msg"]
        encoding = "STANDARD" if set(text) <= GSM_7BIT else "UTF-16"
        if encoding != "STANDARD" and self.refuse_non_gsm:
            return self._error(400, "msg has characters outside GSM 03.38")
        job_id = self._new_job_id()
        self.jobs[job_id] = Job(job_id, params, self.clock.now().timestamp(),
                                OUTCOMES[digit][1 if dn else 0], encoding=encoding,
                                parts=sms_parts(text, encoding, None))
        if self.answer_format == "json":
            return web.json_response({"jobId": job_id}, status=201)
        return web.Response(status=201, text=job_id + "\n", content_type="text/plain")

    async def _report(self, request: web.Request) -> web.Response:
        params, problem = await self._admit(request)
        if problem is not None:
            return problem
        job_id = params.get("jobid", "").strip()
        if not job_id:
            return self._error(400, "missing parameter jobid")
        if job_id not in self.jobs:
            return web.Response(status=self.unknown_job_status, text=self.unknown_job_body,
                                content_type="text/plain")
        stage = self.status_of(job_id)
        if self.answer_format == "json":
            return web.json_response({"jobId": job_id, "processStatus": stage.process_status,
                                      "status": stage.status})
        return web.Response(text=stage.text() + "\n", content_type="text/plain")

    async def _admit(self, request: web.Request) -> tuple[dict[str, str], web.Response | None]:
        """Record the request, then apply injected delays/failures, rate limit and auth."""
        received = await self._receive(request)
        self.remember(received)
        params = received.params
        await self.pause()
        failure = self._failures.take(path=request.path.removeprefix(PREFIX))
        if failure is not None:
            return params, self._error(failure.status, failure.text, failure.retry_after,
                                       explicit=True)
        if params.get("user") != self.user or params.get("pass") != self.password:
            return params, self._error(401, "invalid user or pass")
        if request.method == "POST":
            limited = self._rate_limited()
            if limited is not None:
                return params, limited
        return params, None

    @staticmethod
    async def _receive(request: web.Request) -> ReceivedRequest:
        kind = "none"
        body: dict[str, str] = {}
        if request.content_type == "application/x-www-form-urlencoded":
            kind = "urlencoded"
        elif request.content_type.startswith("multipart/"):
            kind = "multipart"
        if kind != "none":
            form = await request.post()
            body = {key: str(value) for key, value in form.items()}
        return ReceivedRequest(request.method, request.path.removeprefix(PREFIX),
                               dict(request.query), body, kind)

    def _rate_limited(self) -> web.Response | None:
        if self._rate_limit is None:
            return None
        wait = self._rate.admit(self.clock.now().timestamp(), *self._rate_limit)
        if wait is None:
            return None
        hint = max(1.0, math.ceil(wait)) if self.rate_limit_retry_after else None
        return self._error(429, REASONS[429], retry_after=hint)

    @staticmethod
    def _invalid_sms(params: dict[str, str]) -> str | None:
        """Why the ``POST /sms`` parameters are invalid, or None."""
        for name in ("dst", "msg"):
            if not params.get(name, "").strip():
                return f"missing parameter {name}"
        if not DST_RE.fullmatch(params["dst"].strip()):
            return "invalid dst"
        checks: dict[str, Callable[[str], bool]] = {
            "src": lambda v: SENDER_RE.fullmatch(v) is not None,
            "qos": lambda v: v.strip().lower() in QOS_VALUES,
            "dn": lambda v: v.strip().lower() in DN_VALUES,
            "bc": lambda v: len(v) <= 70,
            "ref": lambda v: len(v) <= (192 if v.isascii() else 70),
        }
        for name, valid in checks.items():
            if name in params and not valid(params[name]):
                return f"invalid {name}"
        return None

    def _error(self, status: int, detail: str, retry_after: float | None = None,
               explicit: bool = False) -> web.Response:
        headers = self.retry_after_header(retry_after)
        self.rejected_429 += status == 429
        text = detail if explicit else (detail if self.error_bodies else "")
        return web.Response(status=status, text=text, content_type="text/plain", headers=headers)

    def _new_job_id(self) -> str:
        stamp = self.clock.now()
        return (f"J.{stamp:%Y%m%d-%H%M%S}.{stamp.microsecond // 1000:03d}"
                f"-0lemu{next(self._ids):013d}")


def main(argv: list[str] | None = None) -> None:
    """Run the emulator standalone until interrupted; jobs advance on real time."""
    parser = standalone_parser(__doc__, login=True)
    parser.add_argument("--step", type=float, default=5.0, help="seconds per job stage")
    parser.add_argument("--rate-limit", type=parse_rate_limit, default=None, metavar="N[/SECONDS]",
                        help="admit N jobs per window (default window: 10 s, as the REST docs)")
    parser.add_argument("--rate-limit-retry-after", action="store_true",
                        help="send Retry-After with a 429")
    parser.add_argument("--json", action="store_true", help="answer JSON instead of plain text")
    parser.add_argument("--error-bodies", action="store_true", help="short text in error bodies")
    args = parser.parse_args(argv)
    emulator = RetarusSmsHttpEmulator(
        user=args.user, password=args.password, host=args.host, port=args.port,
        step_seconds=args.step, rate_limit=args.rate_limit,
        rate_limit_retry_after=args.rate_limit_retry_after,
        answer_format="json" if args.json else "text", error_bodies=args.error_bodies)
    emulator.run_standalone("Retarus SMS HTTP Simple emulator on {url}")


if __name__ == "__main__":
    main()
