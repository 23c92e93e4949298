"""An emulator of the MTS Exolve Voice API (voice-message/v1/*, call/v1/*) on 127.0.0.1.

Faithful to the seed ``exolve-voice-api.ru.txt``: every method is a JSON POST with
``Authorization: Bearer <key>``; the documented error messages and status codes per method.

Calls progress by the destination's last digit, on the emulator's clock (``now`` callable plus
:meth:`ExolveEmulator.advance`; real time when standalone), seconds after MakeVoiceMessage:

    0-3  queued → answered (4) → talk (5) → play_audio_stop (14) → completed (15, duration 11)
    4    queued → busy (3)          5  queued → no_answer (60)      6  queued → rejected (4)
    7    queued → failed (1)        8  queued → canceled (2)        9  queued forever

MakeVoiceMessage with ``tts`` is known from third-party clients only (PROVIDERS.md D, [C2]):
``tts_accepted = False`` models an account (or API version) that refuses it with the documented
400 validation error (``tts_refusal`` sets another text, e.g. a protobuf "unknown field").

Standalone: ``python -m tests.emulators.exolve --port 8080 --api-key KEY`` serves under the real
paths, e.g. ``http://127.0.0.1:8080/call/v1/MakeVoiceMessage``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from ._base import EmulatorServer, Failure, standalone_parser

TOKEN_PARSE = "failed to parse token"
TOKEN_CLAIMS = "error getting JWT Token claims"
MALFORMED = "malformed token"
CUSTOMER_STATUS = "error getting customer status"
CUSTOMER_BLOCKED = "Customer is not in correct status"
NO_MEDIA = "error getting media resource"
SCENARIO = "Scenario not found"
NO_APPLICATION = "error getting application"
TRIAL = "the client can only call to his own confirmed number"
VALIDATION = "Validation error. Please enter valid parameter values."
NOT_FOUND = "Not Found"

_SUCCESS: list[tuple[float, str]] = [
    (0, "queued"), (4, "answered"), (5, "talk"), (14, "play_audio_stop"), (15, "completed")]
TIMELINES: dict[str, list[tuple[float, str]]] = {
    **{digit: _SUCCESS for digit in "0123"},
    "4": [(0, "queued"), (3, "busy")],
    "5": [(0, "queued"), (60, "no_answer")],
    "6": [(0, "queued"), (4, "rejected")],
    "7": [(0, "queued"), (1, "failed")],
    "8": [(0, "queued"), (2, "canceled")],
    "9": [(0, "queued")],
}
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 429: 8, 500: 13, 502: 14, 503: 14}


@dataclass
class ReceivedRequest:
    """One request as the emulator saw it."""

    path: str
    authorization: str | None
    body: Any


@dataclass
class Call:
    """A placed voice-message call."""

    call_id: str | int
    source: str
    destination: str
    created: datetime
    service_id: str | None
    tts: dict[str, Any] | None
    forced: list[tuple[datetime, str]] = field(default_factory=list)


class ExolveEmulator(EmulatorServer[ReceivedRequest]):
    """The Exolve Voice API, stateful, with a Python-side control API for tests."""

    def __init__(self, api_key: str = "exolve-test-key-0001", *, host: str = "127.0.0.1",
                 port: int = 0, now: Callable[[], datetime] | None = None,
                 burst: int | None = None, rate_window: float = 1.0, retry_after: int = 1,
                 trial: bool = False, confirmed_numbers: tuple[str, ...] = (),
                 media_ids: tuple[int, ...] = (1967, 1979), numeric_call_ids: bool = False,
                 error_style: str = "error") -> None:
        super().__init__(host=host, port=port)
        self.api_key = api_key
        self._now = now or (lambda: datetime.now(UTC))
        self._offset = timedelta()
        self.burst, self.rate_window, self.retry_after = burst, rate_window, retry_after
        self.trial, self.confirmed_numbers = trial, set(confirmed_numbers)
        self.media_ids = set(media_ids)
        self.numeric_call_ids = numeric_call_ids
        self.error_style = error_style  # error | grpc | nested | text
        self.customer_blocked = False      # 403 Customer is not in correct status
        self.customer_unreachable = False  # 500 error getting customer status
        self.delay = 0.0                   # seconds before each answer (slow provider)
        self.tts_accepted = True           # False: MakeVoiceMessage with tts is a 400
        self.tts_refusal = VALIDATION
        self.voice_messages: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, Call] = {}
        self._next_call = 701234567890

    # -- lifecycle --------------------------------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Every method as a POST under its real path."""
        for path, handler in self._routes().items():
            router.add_post(path, handler)

    # -- control API ------------------------------------------------------------------------

    def now(self) -> datetime:
        """The emulator's current time."""
        return self._now() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward (calls progress, rate windows pass)."""
        self._offset += timedelta(seconds=seconds)

    def fail_next(self, status: int, message: str = "internal error", *, count: int = 1,
                  path: str | None = None, retry_after: int | None = None) -> None:
        """Answer the next ``count`` requests (to ``path``, if given) with ``status``."""
        self._failures.add(Failure(status, message, retry_after, path=path), count)

    def set_status(self, call_id: str | int, status: str) -> None:
        """Force a call's status from now on (e.g. ``modified`` or an unknown value)."""
        self.calls[str(call_id)].forced.append((self.now(), status))

    def requests_to(self, path: str) -> list[ReceivedRequest]:
        """The requests received for ``path`` (e.g. ``/call/v1/GetInfo``)."""
        return [r for r in self.requests if r.path == path]

    # -- plumbing ---------------------------------------------------------------------------

    def _routes(self) -> dict[str, Callable[[web.Request], Any]]:
        return {"/voice-message/v1/Create": self._vm_create,
                "/voice-message/v1/GetList": self._vm_list,
                "/voice-message/v1/GetInfo": self._vm_info,
                "/voice-message/v1/Delete": self._vm_delete,
                "/call/v1/MakeVoiceMessage": self._call_make,
                "/call/v1/GetInfo": self._call_info}

    def _error(self, status: int, message: str,
               retry_after: float | None = None) -> web.Response:
        headers = self.retry_after_header(retry_after)
        if self.error_style == "text":
            return web.Response(status=status, text=message, headers=headers)
        body: dict[str, Any]
        if self.error_style == "grpc":
            body = {"code": _GRPC_CODES.get(status, 2), "message": message, "details": []}
        elif self.error_style == "nested":
            body = {"error": {"code": status, "message": message}}
        else:
            body = {"error": message}
        return web.json_response(body, status=status, headers=headers)

    async def _front(self, request: web.Request, family: str) -> tuple[Any, web.Response | None]:
        """Record, delay, rate-limit, inject failures, check the Bearer key; the parsed body."""
        auth = request.headers.get("Authorization")
        try:
            body: Any = json.loads(await request.text() or "null")
        except ValueError:
            body = None
        self.remember(ReceivedRequest(request.path, auth, body))
        if self.delay:
            await self.pause(self.delay)
        wait = self._rate.admit(self.now().timestamp(), self.burst, self.rate_window)
        if wait is not None:
            return None, self._error(429, "too many requests", self.retry_after)
        failure = self._failures.take(path=request.path)
        if failure is not None:
            return None, self._error(failure.status, failure.text, failure.retry_after)
        token = auth[7:] if auth and auth.startswith("Bearer ") else None
        if family == "call":
            if token != self.api_key:
                return None, self._error(401, MALFORMED)
        elif not token:
            return None, self._error(400, TOKEN_PARSE)
        elif token != self.api_key:
            return None, self._error(401, TOKEN_CLAIMS)
        if not isinstance(body, dict):
            return None, self._error(400, VALIDATION)
        return body, None

    async def _vm_front(self, request: web.Request, *, blockable: bool = True,
                        ) -> tuple[dict[str, Any], web.Response | None]:
        body, error = await self._front(request, "voice-message")
        if error is None and self.customer_unreachable:
            error = self._error(500, CUSTOMER_STATUS)
        if error is None and blockable and self.customer_blocked:
            error = self._error(403, CUSTOMER_BLOCKED)
        return body, error

    # -- voice-message/v1 -------------------------------------------------------------------

    async def _vm_create(self, request: web.Request) -> web.Response:
        body, error = await self._vm_front(request)
        if error is not None:
            return error
        name, media = body.get("name"), body.get("media_id")
        redirect = body.get("redirect_info") or {}
        media_id = int(media) if isinstance(media, int | str) and str(media).isdigit() else None
        digit = redirect.get("digit", 0) if isinstance(redirect, dict) else None
        number = redirect.get("redirect_number") if isinstance(redirect, dict) else 0
        if (not isinstance(name, str) or not name or media_id is None
                or not isinstance(digit, int) or not 0 <= digit <= 9
                or (number is not None and not (isinstance(number, str) and number.isdigit()
                                                and 9 <= len(number) <= 14))):
            return self._error(400, VALIDATION)
        if media_id not in self.media_ids:
            return self._error(404, NO_MEDIA)
        ident = str(uuid.uuid4())
        record: dict[str, Any] = {"id": ident, "name": name, "media_id": media_id,
                                  "created_at": self.now().isoformat(timespec="milliseconds")
                                  .replace("+00:00", "Z")}
        if number:
            record.update(digit=digit, redirect_number=number)
        self.voice_messages[ident] = record
        return web.json_response({"id": ident})

    async def _vm_list(self, request: web.Request) -> web.Response:
        _, error = await self._vm_front(request, blockable=False)
        if error is not None:
            return error
        entries = [{key: vm[key] for key in ("id", "name", "created_at")}
                   for vm in self.voice_messages.values()]
        return web.json_response({"voice_message_list": entries})

    async def _vm_info(self, request: web.Request) -> web.Response:
        body, error = await self._vm_front(request)
        if error is not None:
            return error
        record = self.voice_messages.get(str(body.get("id")))
        if record is None:
            return self._error(404, SCENARIO)
        return web.json_response(record)

    async def _vm_delete(self, request: web.Request) -> web.Response:
        body, error = await self._vm_front(request)
        if error is not None:
            return error
        if self.voice_messages.pop(str(body.get("id")), None) is None:
            return self._error(404, NO_APPLICATION)
        return web.json_response({})

    # -- call/v1 ----------------------------------------------------------------------------

    async def _call_make(self, request: web.Request) -> web.Response:
        body, error = await self._front(request, "call")
        if error is not None:
            return error
        source, destination = body.get("source"), body.get("destination")
        service_id, tts = body.get("service_id"), body.get("tts")
        numbers_ok = all(isinstance(n, str) and n.isdigit() and 9 <= len(n) <= 15
                         for n in (source, destination))
        tts_ok = (isinstance(tts, dict) and isinstance(tts.get("text"), str)
                  and 0 < len(tts["text"]) <= 1000)
        content_ok = (service_id in self.voice_messages) if tts is None else (
            service_id is None and tts_ok)
        if not numbers_ok or not content_ok:
            return self._error(400, VALIDATION)
        if tts is not None and not self.tts_accepted:
            return self._error(400, self.tts_refusal)
        if self.trial and destination not in self.confirmed_numbers:
            return self._error(400, TRIAL)
        self._next_call += 1
        call_id: str | int = (self._next_call if self.numeric_call_ids
                              else f"cal{uuid.uuid4()}")
        self.calls[str(call_id)] = Call(call_id, str(source), str(destination), self.now(),
                                        service_id, tts)
        return web.json_response({"call_id": call_id})

    async def _call_info(self, request: web.Request) -> web.Response:
        body, error = await self._front(request, "call")
        if error is not None:
            return error
        raw = body.get("call_id")
        if isinstance(raw, bool) or not isinstance(raw, str | int) or raw == "":
            return self._error(400, VALIDATION)
        call = self.calls.get(str(raw))
        if call is None:
            return self._error(404, NOT_FOUND)
        service = self.voice_messages.get(call.service_id or "")
        if call.service_id and (service is None or service["media_id"] not in self.media_ids):
            return self._error(404, NOT_FOUND)
        return web.json_response(self._call_view(call))

    def _call_view(self, call: Call) -> dict[str, Any]:
        """GetInfo's answer for ``call`` at the emulator's current time."""
        now = self.now()
        steps = [(call.created + timedelta(seconds=s), status)
                 for s, status in TIMELINES[call.destination[-1]]] + call.forced
        # the latest step reached wins; at equal times a forced status (listed last) wins
        updated, _, status = max((at, index, status) for index, (at, status) in enumerate(steps)
                                 if at <= now)
        started = next((at for at, s in steps if s == "answered" and at <= now), None)
        final = status not in ("queued", "answered", "talk", "play_audio_stop")

        def rfc1123(moment: datetime) -> str:
            return format_datetime(moment.astimezone(UTC)).replace("-0000", "+0000")

        view: dict[str, Any] = {
            "call_id": call.call_id, "created": rfc1123(call.created),
            "updated": rfc1123(updated), "timeout": 60, "status": status,
            "direction": "outbound", "source": call.source, "destination": call.destination}
        if started is not None:
            view["started"] = rfc1123(started)
        if final:
            view["ended"] = rfc1123(updated)
            view["duration"] = int((updated - started).total_seconds()) if started else 0
        return view


def main(argv: list[str] | None = None) -> None:
    """Run the emulator standalone until interrupted."""
    parser = standalone_parser(__doc__)
    parser.add_argument("--api-key", default="exolve-test-key-0001")
    parser.add_argument("--trial", action="store_true", help="only confirmed numbers callable")
    parser.add_argument("--confirmed-number", action="append", default=[])
    parser.add_argument("--media-id", type=int, action="append", default=[])
    parser.add_argument("--burst", type=int, default=None, help="429 after N requests/window")
    parser.add_argument("--rate-window", type=float, default=1.0)
    parser.add_argument("--numeric-call-ids", action="store_true")
    parser.add_argument("--error-style", default="error",
                        choices=["error", "grpc", "nested", "text"])
    args = parser.parse_args(argv)
    emulator = ExolveEmulator(
        args.api_key, host=args.host, port=args.port, burst=args.burst,
        rate_window=args.rate_window, trial=args.trial,
        confirmed_numbers=tuple(args.confirmed_number),
        media_ids=tuple(args.media_id) or (1967, 1979),
        numeric_call_ids=args.numeric_call_ids, error_style=args.error_style)
    emulator.run_standalone(f"Exolve emulator on {{url}} (media ids "
                            f"{sorted(emulator.media_ids)}); Ctrl-C to stop")


if __name__ == "__main__":
    main()
