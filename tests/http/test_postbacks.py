"""Tests for the postback receiver: unit level, over aiohttp, and end to end with the emulator."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from alertline.clock import ManualClock
from alertline.http.postbacks import (
    PostbackReceiver,
    aiohttp_routes,
    callback_base_url,
    callback_url,
    provider_callback_url,
)
from alertline.model import Channel, DeliveryState, can_transition
from alertline.providers.base import (
    Batch,
    BatchItem,
    Provider,
    ProviderContext,
    StatusUpdate,
)
from alertline.providers.fortytwo.voice import FortytwoVoiceProvider
from alertline.providers.simulator import SimulatorProvider
from alertline.redact import Redactor
from tests.emulators.fortytwo import FortytwoVoiceEmulator

SECRET = "pb-9f8e7d6c5b4a3210"
API_TOKEN = "1d2c3b4a-5e6f-4a8b-9c0d-e1f2a3b4c5d6"
POSTBACK: dict[str, Any] = {
    "api_job_id": "4359d2d7-2f10-49f3-9ad3-dfc574e14054", "client_job_id": "alert-0001",
    "data": [{"type": "voice", "message_id": "14570116000720000149", "status": "RINGING",
              "timestamp": 1457423756, "to": "35699000010", "client_message_id": "dlv-0",
              "ring_date": 1457423756, "answer_date": False, "hang_date": False}]}


@dataclass
class Recorder:
    """A tiny PushTarget: keeps each delivery's state the way the engine would (no going back)."""

    updates: list[StatusUpdate] = field(default_factory=list)
    states: dict[str, DeliveryState] = field(default_factory=dict)
    fail: int = 0

    async def apply_push(self, provider: str, updates: list[StatusUpdate]) -> int:
        if self.fail:
            self.fail -= 1
            raise RuntimeError(f"store is down ({SECRET})")
        self.updates.extend(updates)
        for update in updates:
            key = update.delivery_id or update.provider_message_id or ""
            current = self.states.get(key, DeliveryState.SUBMITTED)
            if can_transition(current, update.state):
                self.states[key] = update.state
        return len(updates)


def fortytwo(context: ProviderContext | None = None, **options: Any) -> FortytwoVoiceProvider:
    return FortytwoVoiceProvider("ft", {"token": API_TOKEN, **options},
                                 context or ProviderContext(clock=ManualClock()))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def receiver(recorder: Recorder) -> PostbackReceiver:
    providers: dict[str, Provider] = {
        "ft": fortytwo(),
        "sim": SimulatorProvider("sim", {}, ProviderContext(clock=ManualClock())),
    }
    return PostbackReceiver(SECRET, recorder, providers.get, max_body=4096, dedupe_size=3)


def body(**changes: Any) -> bytes:
    item = {**POSTBACK["data"][0], **changes}
    return json.dumps({**POSTBACK, "data": [item]}).encode()


# -- URL convention ------------------------------------------------------------------------------

def test_callback_url_convention() -> None:
    assert callback_url("https://alerts.example.org:8787/", "ft", SECRET) == (
        f"https://alerts.example.org:8787/postbacks/ft/{SECRET}")
    assert callback_url("http://h", "my provider/x", "a b") == (
        "http://h/postbacks/my%20provider%2Fx/a%20b")
    base = callback_base_url("http://h:8787", SECRET)
    assert base == f"http://h:8787/postbacks/{{provider}}/{SECRET}"
    assert provider_callback_url(base, "ft") == callback_url("http://h:8787", "ft", SECRET)
    assert provider_callback_url("http://h/hooks/", "ft") == "http://h/hooks/ft"


def test_the_token_must_be_long_enough(recorder: Recorder) -> None:
    with pytest.raises(ValueError, match="16 characters"):
        PostbackReceiver("short", recorder, lambda name: None)


# -- handle() ------------------------------------------------------------------------------------

async def test_a_postback_reaches_the_target(receiver: PostbackReceiver,
                                             recorder: Recorder) -> None:
    result = await receiver.handle("ft", SECRET, body(), "application/json")
    assert (result.status, result.body) == (200, {"ok": True, "updates": 1, "duplicates": 0,
                                                  "matched": 1})
    assert json.loads(result.text) == result.body
    [update] = recorder.updates
    assert (update.state, update.provider_ref, update.provider_message_id, update.delivery_id) == (
        DeliveryState.SUBMITTED, POSTBACK["api_job_id"],
        f"{POSTBACK['api_job_id']}:14570116000720000149", "dlv-0")  # job and message id


async def test_a_wrong_token_changes_nothing(receiver: PostbackReceiver, recorder: Recorder,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for token in ("", SECRET[:-1], SECRET + "x", SECRET.upper()):
        result = await receiver.handle("ft", token, body(), "application/json")
        assert (result.status, result.body) == (404, {"error": "not_found"})
    oversized = await receiver.handle("ft", "nope", b"x" * 10_000, None)
    assert oversized.status == 404
    assert recorder.updates == []
    assert SECRET not in caplog.text


@pytest.mark.parametrize("provider", ["nope", "sim", ""])
async def test_unknown_or_polling_providers_are_not_found(receiver: PostbackReceiver,
                                                          recorder: Recorder,
                                                          provider: str) -> None:
    result = await receiver.handle(provider, SECRET, body(), "application/json")
    assert result.status == 404 and recorder.updates == []


async def test_an_oversized_body_is_refused(receiver: PostbackReceiver,
                                            recorder: Recorder) -> None:
    result = await receiver.handle("ft", SECRET, body(padding="x" * 5000), "application/json")
    assert (result.status, result.body["error"]) == (413, "too_large")
    assert recorder.updates == []


@pytest.mark.parametrize(("raw", "field"), [
    (b"{not json", "body"),
    (b"\xff\xfe\x00", "body"),
    (b"", "body"),
    (b"[1, 2]", "body"),
    (b'{"data": []}', "api_job_id"),
    (body(status=None), "data[0].status"),
    (body(message_id=""), "data[0].message_id"),
])
async def test_malformed_bodies_are_a_400_naming_the_field(receiver: PostbackReceiver,
                                                           recorder: Recorder, raw: bytes,
                                                           field: str) -> None:
    result = await receiver.handle("ft", SECRET, raw, "application/json")
    assert (result.status, result.body["field"]) == (400, field)
    assert recorder.updates == []


async def test_a_body_nested_beyond_the_recursion_limit_is_a_400(recorder: Recorder) -> None:
    receiver = PostbackReceiver(SECRET, recorder, {"ft": fortytwo()}.get, max_body=64 * 1024)
    result = await receiver.handle("ft", SECRET, b"[" * 30_000 + b"]" * 30_000, None)
    assert (result.status, result.body["field"]) == (400, "body")  # not a 500 from the parser


async def test_duplicates_are_dropped_in_a_bounded_memory(receiver: PostbackReceiver,
                                                          recorder: Recorder) -> None:
    first = await receiver.handle("ft", SECRET, body(), None)
    again = await receiver.handle("ft", SECRET, body(), "text/plain")
    assert (first.body["updates"], again.body["updates"], again.body["duplicates"]) == (1, 0, 1)
    assert len(recorder.updates) == 1 and receiver.duplicates == 1
    for stamp in (1, 2, 3):  # pushes the first key out of the three-entry memory
        await receiver.handle("ft", SECRET, body(timestamp=1457423756 + stamp), None)
    await receiver.handle("ft", SECRET, body(), None)
    assert len(recorder.updates) == 5


async def test_a_failing_target_is_a_500_and_the_retry_is_applied(
        receiver: PostbackReceiver, recorder: Recorder,
        caplog: pytest.LogCaptureFixture) -> None:
    recorder.fail = 1
    failed = await receiver.handle("ft", SECRET, body(), None)
    assert (failed.status, failed.body) == (500, {"error": "internal"})
    retried = await receiver.handle("ft", SECRET, body(), None)
    assert retried.status == 200 and len(recorder.updates) == 1
    assert "store is down" in caplog.text and SECRET not in caplog.text


# -- over aiohttp ----------------------------------------------------------------------------------

@pytest.fixture
async def server(receiver: PostbackReceiver) -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes(aiohttp_routes(receiver))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_the_aiohttp_route(server: str, recorder: Recorder) -> None:
    async with httpx.AsyncClient() as client:
        url = callback_url(server, "ft", SECRET)
        ok = await client.post(url, content=body(), headers={"Content-Type": "application/json"})
        assert (ok.status_code, ok.json()["matched"]) == (200, 1)
        assert ok.headers["Content-Type"].startswith("application/json")
        assert (await client.get(url)).status_code == 405
        forged = await client.post(callback_url(server, "ft", "x" * 16), content=body())
        assert forged.status_code == 404
        bad = await client.post(url, content=b"nonsense")
        assert (bad.status_code, bad.json()["field"]) == (400, "body")
        big = await client.post(url, content=b"{" + b" " * 10_000 + b"}")
        assert big.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b" " * 1000

        streamed = await client.post(url, content=chunks())
        assert streamed.status_code == 413
    assert len(recorder.updates) == 1


# -- end to end: emulator -> receiver -> recorded updates ----------------------------------------

async def test_emulator_postbacks_end_to_end(server: str, recorder: Recorder,
                                             receiver: PostbackReceiver,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = ManualClock()
    async with FortytwoVoiceEmulator(API_TOKEN, now=lambda: clock.now().timestamp(),
                                     menu_number="35699000010", keypress="5") as emulator, \
            httpx.AsyncClient() as http:
        context = ProviderContext(clock=clock, http=http, redactor=Redactor([SECRET]),
                                  callback_base_url=callback_base_url(server, SECRET))
        provider = fortytwo(context, base_url=emulator.base_url, enable_menu_response=True)
        receiver._providers = {"ft": provider}.get  # the receiver serves this emulator's adapter
        numbers = ("+35699000010", "+35699000016", "+35699000017", "+35699000019")
        items = tuple(BatchItem(f"dlv-{n[-1]}", "alert-0001", n, "Water leak in the basement",
                                "Water leak in the basement") for n in numbers)
        submission = await provider.submit(Batch(channel=Channel.VOICE, items=items))
        assert emulator.requests[-1].body["callback_url"] == callback_url(server, "ft", SECRET)

        clock.advance(5)
        ringing = await emulator.advance()
        assert [status for _, _, status in ringing] == [200] * 4
        assert recorder.states == dict.fromkeys(
            ("dlv-0", "dlv-6", "dlv-7", "dlv-9"), DeliveryState.SUBMITTED)

        clock.advance(30)
        finals = await emulator.advance()
        # three finals, plus the first call's final again (duplicate) and its stale RINGING
        assert [status for _, _, status in finals] == [200] * 5
        assert receiver.duplicates == 1
        assert recorder.states == {"dlv-0": DeliveryState.DELIVERED,
                                   "dlv-6": DeliveryState.FAILED, "dlv-7": DeliveryState.FAILED,
                                   "dlv-9": DeliveryState.SUBMITTED}
        by_id = {u.delivery_id: u for u in recorder.updates if u.state.final}
        assert by_id["dlv-0"].details["keypress"] == "5"
        assert by_id["dlv-0"].details["duration"] == 12
        assert (by_id["dlv-6"].reason, by_id["dlv-7"].reason) == ("USER_BUSY", "NO_ANSWER")
        message_ids = {i.delivery_id: i.provider_message_id for i in submission.items}
        assert all(u.provider_ref == submission.provider_ref for u in recorder.updates)
        assert all(message_ids[u.delivery_id or ""] == u.provider_message_id
                   for u in recorder.updates)
        first_call = [u.provider_status for u in recorder.updates if u.delivery_id == "dlv-0"]
        assert first_call == ["RINGING", "DELIVRD", "RINGING"]  # the last one arrived late

        before = list(recorder.updates)
        forged = json.dumps(finals[1][1]).replace("UNDELIV", "DELIVRD").encode()
        assert await emulator.post_raw(callback_url(server, "ft", "guessed-token-000"),
                                       forged) == 404
        assert await emulator.post_raw(callback_url(server, "ft", SECRET), b"{") == 400
        assert recorder.updates == before and recorder.states["dlv-6"] is DeliveryState.FAILED
        assert await emulator.advance() == []  # nothing left to happen: 9 keeps ringing
    alertline_logs = " ".join(r.getMessage() for r in caplog.records
                              if r.name.startswith("alertline"))
    assert SECRET not in alertline_logs and API_TOKEN not in alertline_logs
