"""Fortytwo Voice Messaging emulator: a real HTTP server on 127.0.0.1, faithful to the seed.

``POST <path>`` (default ``/1/voice``) validates a job with the seed's rules and response codes,
answers the documented envelope, and on every :meth:`FortytwoVoiceEmulator.advance` moves each
call one step (queued -> RINGING -> final) and POSTs the documented postback to the job's
``callback_url``. Outcome by the destination's last digit: 0-4 answered (``DELIVRD``), 5
``UNALLOCATED_NUMBER``, 6 ``USER_BUSY`` (4017, the seed's example), 7 ``NO_ANSWER``, 8
``CALL_REJECTED``, 9 keeps ringing. Only ``UNDELIV``/4017/``USER_BUSY`` is confirmed; the other
statuses, codes and the ``menu_response`` field are inferred (PROVIDERS.md E). The first call of
every job gets its final postback twice and then a stale ``RINGING`` (duplicate, out of order).

Account switches: ``languages`` (the token's TTS languages, else -97), ``funds`` and
``uncovered_prefixes`` (-101 "There was a problem with your job"), ``busy_jobs`` (-105 "Server
too busy" for the next N jobs), ``test_account_number`` (-122/-123).

Emulator-only: ``GET <path>/status/{api_job_id}`` and ``GET <path>/message/{message_id}``
(modelled on Fortytwo's IM API; they give the -120/-121/-125/-126 codes a home).

Standalone: ``python -m tests.emulators.fortytwo --port 8042 --token T`` (advances on real time).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

from ._base import EmulatorServer, Failure, standalone_parser

QUEUED = "Job has been queued, Please check the progress via the HTTP Postbacks"
MESSAGES: dict[int, str] = {
    -50: "Not authorized", -80: "Invalid JSON Body",
    -81: "Cannot use both Audio File and TTS at the same time", -82: "{} is not allowed",
    -83: "Invalid type for 'destinations'", -84: "Missing object called 'number' in 'destinations'",
    -85: "The destination number should have at least have 7 and a maximum of 15 digits",
    -86: "There can only be {} destination numbers",
    -87: "There are no valid destination numbers in the 'destinations' parameter",
    -88: "The 'destinations' Object is missing",
    -89: "Required 'tts_text' or 'audio_file_url' in the 'voice_content' object",
    -90: "Cannot use 'tts' properties in a call of type 'Audio' in the 'voice_content' object",
    -91: "Cannot use 'audio_file_url' in a call of type 'TTS' in the 'voice_content' object",
    -92: "The 'sender_id' number {} should at least have 7 digits and a maximum of 15 digits",
    -93: "Parameter 'enable_menu_response' has to be either 'true' or 'false'",
    -95: "The 'tts_text' should at least have 7 characters and a maximum of 15",
    -96: "The TTS voice selected is invalid. (e.g MAN or WOMAN)",
    -97: "The TTS language selected is invalid", -98: "The 'voice_content' Object is missing",
    -99: "The 'job_id' parameter should at least have 7 characters and a maximum of 15",
    -101: "There was a problem with your job: {}", -102: "Custom ID {} is not unique",
    -103: "{} should be bigger than 10", -104: "{} should be integer", -105: "Server too busy",
    -106: "The Audio File supplied cannot be downloaded to our servers",
    -107: "The Audio File format supplied is Invalid (must be MP3 or WAV). Also ensure that the "
          "URL has no spaces or invalid characters and also that the File is reachable via the "
          "internet.",
    -108: "The Audio File format supplied is corrupted",
    -109: "The Audio File supplied cannot be processed. Please contact customer support",
    -110: "There was some problems with the Audio File",
    -111: "The 'audio_file_url' must be valid (starting with http or https)",
    -112: "Cannot establish service settings", -120: "Could not load the call details",
    -121: "Could not verify the Call Message ID",
    -122: "Only 1 Destination allowed, when using a TEST Account",
    -123: "Only the personal mobile phone number ({}) can used when using a TEST Account",
    -125: "Could not load the Job details", -126: "Could not verify the api_job_id",
}
OUTCOMES: dict[str, tuple[int, str] | None] = {
    "5": (4001, "UNALLOCATED_NUMBER"), "6": (4017, "USER_BUSY"), "7": (4018, "NO_ANSWER"),
    "8": (4021, "CALL_REJECTED"),
}
TOP_LEVEL = {"destinations", "voice_content", "job_id", "callback_url"}
LANGUAGES = ("en-GB", "en-US", "de-DE", "fr-FR", "it-IT", "es-ES", "nl-NL", "pt-PT", "sv-SE",
             "da-DK", "nb-NO", "pl-PL", "ru-RU", "tr-TR", "ja-JP")  # 15 languages; list [I]
_AUDIO_URL = re.compile(r"https?://[^/\s]", re.IGNORECASE)
_AUDIO_FILE = re.compile(r"[A-Za-z0-9_-]+\.(mp3|wav)", re.IGNORECASE)


class Rejection(Exception):
    """A job the API refuses: its response code and description."""

    def __init__(self, code: int, *args: object) -> None:
        super().__init__(MESSAGES[code].format(*args))
        self.code = code


@dataclass
class Call:
    """One destination of a job and how far its call has got."""

    message_id: str
    number: str
    custom_id: str | None
    stage: int = 0          # 0 queued, 1 ringing, 2 final
    ring_date: int | None = None
    answer_date: int | None = None
    hang_date: int | None = None
    status: str = "QUEUED"
    keypress: str | None = None


@dataclass
class Job:
    """An accepted job."""

    api_job_id: str
    client_job_id: str | None
    callback_url: str | None
    content: dict[str, Any]
    calls: list[Call] = field(default_factory=list)


@dataclass
class Received:
    """A request the emulator received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FortytwoVoiceEmulator(EmulatorServer[Received]):
    """The Fortytwo voice API on a free loopback port; ``async with`` starts and stops it."""

    def __init__(self, token: str = "0b9f6c3e-2f4e-4b1e-9a7c-5d8e1f2a3b4c", *,
                 path: str = "/1/voice", now: Callable[[], float] = time.time,
                 max_destinations: int = 500, burst: int | None = None, window: float = 1.0,
                 retry_after: int = 1, test_account_number: str | None = None,
                 menu_number: str | None = None, keypress: str = "1",
                 tts_text_max: int | None = None, max_body: int = 1024 * 1024,
                 default_callback_url: str | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        super().__init__(host=host, port=port, max_body=max_body)
        self.token, self.path, self.now = token, path.rstrip("/"), now
        self.max_destinations, self.burst, self.window = max_destinations, burst, window
        self.retry_after, self.test_account_number = retry_after, test_account_number
        self.menu_number, self.keypress, self.tts_text_max = menu_number, keypress, tts_text_max
        self.default_callback_url = default_callback_url
        self.duplicates = self.out_of_order = True
        self.jobs: dict[str, Job] = {}
        self.callbacks: list[tuple[str, dict[str, Any], int]] = []
        self.audio_failures: dict[str, int] = {}   # audio URL -> -106 ... -110
        self.languages: set[str] = set(LANGUAGES)  # tts_lang values the token speaks (-97)
        self.funds = True  # False: every job is refused with -101 (insufficient funds)
        self.uncovered_prefixes: set[str] = set()  # destinations without coverage (-101)
        self.busy_jobs = 0  # the next N jobs are answered -105 "Server too busy"
        self._ids = itertools.count(1)
        self._client: httpx.AsyncClient | None = None

    # -- control API -------------------------------------------------------------------------
    def fail_next(self, status: int = 500, count: int = 1) -> None:
        """Answer the next ``count`` requests with HTTP ``status`` (e.g. 500, 503)."""
        self._failures.add(Failure(status), count)

    def answer_next_code(self, code: int, count: int = 1) -> None:
        """Answer the next ``count`` jobs with response code ``code`` (HTTP 403)."""
        self._failures.add(Failure(403, code=code), count)

    async def advance(self) -> list[tuple[str, dict[str, Any], int]]:
        """Move every open call one step and POST its postbacks; returns what was sent."""
        sent: list[tuple[str, dict[str, Any], int]] = []
        for job in list(self.jobs.values()):
            for index, call in enumerate(job.calls):
                bodies = self._step(job, call, first=index == 0)
                for body in bodies:
                    sent.append(await self._post(job, body))
        return sent

    async def post_raw(self, url: str, body: bytes) -> int:
        """POST an arbitrary body to ``url`` (forged or malformed postbacks in tests)."""
        assert self._client is not None
        response = await self._client.post(url, content=body,
                                           headers={"Content-Type": "application/json"})
        return response.status_code

    # -- lifecycle ---------------------------------------------------------------------------
    def add_routes(self, router: web.UrlDispatcher) -> None:
        """The job endpoint and the two emulator-only status routes below ``path``."""
        router.add_post(self.path, self._job)
        router.add_get(self.path + "/status/{job}", self._job_status)
        router.add_get(self.path + "/message/{message}", self._message_status)

    async def start(self) -> None:
        """Start serving, with the HTTP client that sends postbacks."""
        await super().start()
        self._client = httpx.AsyncClient(timeout=5.0)

    async def close(self) -> None:
        """Stop serving and sending postbacks."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        await super().close()

    # -- HTTP --------------------------------------------------------------------------------
    async def _gate(self, request: web.Request) -> web.Response | None:
        """Everything before the body: faults, slowness, throttling, the token."""
        await self.pause()
        failure = self._failures.peek()
        if failure is not None and failure.code is None:
            self._failures.take()
            return web.Response(status=failure.status, text="Server Error"
                                if failure.status == 500 else "Service Unavailable")
        if self._rate.admit(self.now(), self.burst, self.window) is not None:
            return web.json_response({"message": "Too many requests (Throttling)"}, status=429,
                                     headers=self.retry_after_header(self.retry_after))
        if request.headers.get("Authorization", "") != f"Token {self.token}":
            return _envelope(401, -50, MESSAGES[-50])
        return None

    async def _job(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        self.remember(Received(request.method, request.path, dict(request.headers), body))
        refused = await self._gate(request)
        if refused is not None:
            return refused
        if "application/json" not in request.headers.get("Content-Type", ""):
            return web.Response(status=415, text="Unsupported Media Type")
        client_job = body.get("job_id") if isinstance(body, dict) else None
        failure = self._failures.take()
        if failure is not None:
            assert isinstance(failure.code, int)
            code = failure.code
            text = MESSAGES[code].format("a forced failure")
            return _envelope(403, code, text, client_job)
        if self.busy_jobs:
            self.busy_jobs -= 1
            return _envelope(403, -105, MESSAGES[-105], client_job)
        try:
            job = self._accept(body)
        except Rejection as rejection:
            return _envelope(403, rejection.code, str(rejection), client_job)
        self.jobs[job.api_job_id] = job
        answer: dict[str, Any] = {"api_job_id": job.api_job_id}
        if job.client_job_id is not None:
            answer["client_job_id"] = job.client_job_id
        answer["results"] = {
            call.number: {"message_id": call.message_id,
                          **({"custom_id": call.custom_id} if call.custom_id else {})}
            for call in job.calls}
        answer["result_info"] = {"status_code": "0", "description": QUEUED}
        return web.json_response(answer)

    async def _job_status(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        job_id = request.match_info["job"]
        if len(job_id) != 36:
            return _envelope(403, -126, MESSAGES[-126])
        job = self.jobs.get(job_id)
        if job is None:
            return _envelope(403, -125, MESSAGES[-125])
        return web.json_response({"api_job_id": job.api_job_id,
                                  "client_job_id": job.client_job_id,
                                  "data": [self._item(job, call) for call in job.calls]})

    async def _message_status(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        message_id = request.match_info["message"]
        if not (message_id.isdigit() and len(message_id) == 20):
            return _envelope(403, -121, MESSAGES[-121])
        for job in self.jobs.values():
            for call in job.calls:
                if call.message_id == message_id:
                    return web.json_response({"api_job_id": job.api_job_id,
                                              "data": [self._item(job, call)]})
        return _envelope(403, -120, MESSAGES[-120])

    # -- the seed's validation rules ---------------------------------------------------------
    def _accept(self, body: Any) -> Job:
        if not isinstance(body, dict):
            raise Rejection(-80)
        for key in body:
            if key not in TOP_LEVEL:
                raise Rejection(-82, key)
        calls = self._destinations(body)
        content = body.get("voice_content")
        if not isinstance(content, dict):
            raise Rejection(-98)
        self._voice_content(content)
        job_id = body.get("job_id")
        if job_id is not None and not (isinstance(job_id, str) and 7 <= len(job_id) <= 15):
            raise Rejection(-99)
        callback = body.get("callback_url") or self.default_callback_url
        return Job(str(uuid.uuid4()), job_id, callback, content, calls)

    def _destinations(self, body: dict[str, Any]) -> list[Call]:
        if "destinations" not in body:
            raise Rejection(-88)
        destinations = body["destinations"]
        if not isinstance(destinations, list):
            raise Rejection(-83)
        if not destinations or not all(isinstance(d, dict) and "number" in d
                                       for d in destinations):
            raise Rejection(-84)
        if len(destinations) > self.max_destinations:
            raise Rejection(-86, self.max_destinations)
        calls: list[Call] = []
        custom_ids: set[str] = set()
        for destination in destinations:
            number = re.sub(r"\D", "", str(destination["number"]))  # sanitised
            if not number:
                continue
            if not 7 <= len(number) <= 15:
                raise Rejection(-85)
            custom = destination.get("custom_id")
            if custom is not None:
                if str(custom) in custom_ids:
                    raise Rejection(-102, custom)
                custom_ids.add(str(custom))
            calls.append(Call(self._message_id(), number,
                              str(custom) if custom is not None else None))
        if not calls:
            raise Rejection(-87)
        if not self.funds:
            raise Rejection(-101, "insufficient funds")
        for call in calls:
            if call.number.startswith(tuple(self.uncovered_prefixes)):
                raise Rejection(-101, f"no coverage for {call.number}")
        if self.test_account_number is not None:
            if len(calls) > 1:
                raise Rejection(-122)
            if calls[0].number != self.test_account_number:
                raise Rejection(-123, self.test_account_number)
        return calls

    def _voice_content(self, content: dict[str, Any]) -> None:
        tts, audio = content.get("tts_text"), content.get("audio_file_url")
        if tts and audio:
            raise Rejection(-81)
        if not tts and not audio:
            raise Rejection(-89)
        if audio and any(key.startswith("tts_") for key in content):
            raise Rejection(-90)
        if tts and "audio_file_url" in content:
            raise Rejection(-91)
        sender = content.get("sender_id")
        if sender is not None and not (str(sender).isdigit() and 7 <= len(str(sender)) <= 15):
            raise Rejection(-92, sender)
        if content.get("enable_menu_response", True) not in (True, False, "true", "false"):
            raise Rejection(-93)
        if tts:
            longest = self.tts_text_max
            if len(tts) < 7 or (longest is not None and len(tts) > longest):
                raise Rejection(-95)
            if str(content.get("tts_voice", "man")).upper() not in ("MAN", "WOMAN"):
                raise Rejection(-96)
            if content.get("tts_lang", "en-GB") not in self.languages:
                raise Rejection(-97)
        for key in ("time_limit_seconds", "ring_timeout_seconds"):
            if key in content:
                value = content[key]
                if isinstance(value, bool) or not str(value).isdigit():
                    raise Rejection(-104, key)
                if int(value) <= 10:
                    raise Rejection(-103, key)
        if audio:
            self._audio(str(audio))

    def _audio(self, url: str) -> None:
        if not _AUDIO_URL.match(url):
            raise Rejection(-111)
        if any(char.isspace() for char in url):
            raise Rejection(-107)
        name = url.split("?", 1)[0].rsplit("/", 1)[-1]
        if not _AUDIO_FILE.fullmatch(name):
            raise Rejection(-107)
        if url in self.audio_failures:
            raise Rejection(self.audio_failures[url])

    # -- call progress and postbacks ---------------------------------------------------------
    def _step(self, job: Job, call: Call, *, first: bool) -> list[dict[str, Any]]:
        now = int(self.now())
        if call.stage == 0:
            call.stage, call.status, call.ring_date = 1, "RINGING", now
            return [self._postback(job, call)]
        if call.stage != 1 or call.number.endswith("9"):
            return []
        ringing = self._postback(job, call)
        call.stage, call.hang_date = 2, now
        outcome = OUTCOMES.get(call.number[-1])
        if outcome is None:
            call.status, call.answer_date = "DELIVRD", max(call.ring_date or now, now - 12)
            if call.number == self.menu_number and \
                    job.content.get("enable_menu_response") in (True, "true"):
                call.keypress = self.keypress
        else:
            call.status = "UNDELIV"
        final = self._postback(job, call)
        bodies = [final]
        if first and self.duplicates:
            bodies.append(final)
        if first and self.out_of_order:
            bodies.append(ringing)
        return bodies

    def _item(self, job: Job, call: Call) -> dict[str, Any]:
        now = self.now()
        content = job.content
        item: dict[str, Any] = {
            "type": "voice", "timestamp": int(now), "micro_timestamp": int(now * 1000),
            "from": str(content.get("sender_id", "35699000000")),
            "job_type": "AUDIO" if content.get("audio_file_url") else "TTS",
            "callback_url": job.callback_url or "",
        }
        for key in ("tts_text", "tts_voice", "tts_lang", "audio_file_url"):
            if key in content:
                item[key] = content[key]
        item.update({"message_id": call.message_id, "to": call.number,
                     "ring_date": call.ring_date or False, "answer_date": call.answer_date or False,
                     "hang_date": call.hang_date or False, "status": call.status})
        if call.custom_id is not None:
            item["client_message_id"] = call.custom_id
        talked = (call.hang_date - call.answer_date) if call.hang_date and call.answer_date else 0
        item["actual_duration"], item["billed_duration"] = talked, -(-talked // 60) * 60
        outcome = OUTCOMES.get(call.number[-1])
        if call.status == "UNDELIV" and outcome is not None:
            item["error_code"], item["error_description"] = outcome
        if call.keypress is not None:
            item["menu_response"] = call.keypress
        return item

    def _postback(self, job: Job, call: Call) -> dict[str, Any]:
        """The documented postback body for one call."""
        return {"api_job_id": job.api_job_id,
                **({"client_job_id": job.client_job_id} if job.client_job_id else {}),
                "data": [self._item(job, call)]}

    async def _post(self, job: Job, body: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
        status = 0
        if job.callback_url and self._client is not None:
            with contextlib.suppress(httpx.HTTPError):
                response = await self._client.post(job.callback_url, json=body)
                status = response.status_code
        record = (job.callback_url or "", body, status)
        self.callbacks.append(record)
        return record

    def _message_id(self) -> str:
        return f"{int(self.now()) % 10**10:010d}{next(self._ids):010d}"


def _envelope(status: int, code: int, description: str,
              client_job: Any = None) -> web.Response:
    body: dict[str, Any] = {"api_job_id": str(uuid.uuid4())}
    if isinstance(client_job, str):
        body["client_job_id"] = client_job
    body["result_info"] = {"status_code": code, "description": description}
    return web.json_response(body, status=status)


def main(argv: list[str] | None = None) -> None:
    """Run the emulator standalone until interrupted."""
    parser = standalone_parser(__doc__, port=8042)
    parser.add_argument("--token", "--password", dest="token",
                        default="0b9f6c3e-2f4e-4b1e-9a7c-5d8e1f2a3b4c")
    parser.add_argument("--user", help="ignored (Fortytwo authenticates by token only)")
    parser.add_argument("--burst", type=int, default=None, help="requests per second before 429")
    parser.add_argument("--step", type=float, default=3.0, help="seconds between call steps")
    args = parser.parse_args(argv)
    emulator = FortytwoVoiceEmulator(args.token, host=args.host, port=args.port,
                                     burst=args.burst)
    emulator.run_standalone(f"Fortytwo voice emulator: POST {{url}}{emulator.path}",
                  tick=emulator.advance, every=args.step)


if __name__ == "__main__":
    main()
