"""The exolve_voice adapter against the Exolve emulator, over real HTTP."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import voluptuous as vol

from alertline.clock import ManualClock
from alertline.errors import (
    AuthError,
    ProviderError,
    RateLimitedError,
    RejectedError,
    TransientError,
    ValidationError,
)
from alertline.model import Channel, DeliveryState
from alertline.phone import NumberFormat
from alertline.providers import adapter_class
from alertline.providers.base import Batch, BatchItem, ProviderContext
from alertline.providers.exolve.cli import add_exolve_parser, run_exolve
from alertline.providers.exolve.voice import ExolveVoiceProvider
from alertline.providers.exolve.wire import (
    describe_error,
    map_status,
    parse_call_info,
    parse_time,
    parse_voice_message,
    parse_voice_message_list,
)
from alertline.redact import MASK
from tests.emulators.exolve import ExolveEmulator

API_KEY = "exolve-secret-key-0123456789"
SOURCE = "74959999999"
Factory = Callable[..., ExolveVoiceProvider]


@pytest.fixture
async def emu(clock: ManualClock) -> AsyncIterator[ExolveEmulator]:
    async with ExolveEmulator(API_KEY, now=clock.now) as emulator:
        yield emulator


@pytest.fixture
async def make(emu: ExolveEmulator, clock: ManualClock) -> AsyncIterator[Factory]:
    providers: list[ExolveVoiceProvider] = []

    def factory(**overrides: Any) -> ExolveVoiceProvider:
        options = ExolveVoiceProvider.validate_options(
            {"api_key": API_KEY, "source": SOURCE, "base_url": emu.base_url, **overrides})
        provider = ExolveVoiceProvider("exolve", options, ProviderContext(clock=clock))
        providers.append(provider)
        return provider

    yield factory
    for provider in providers:
        await provider.aclose()


def batch(number: str = "+79991234560", text: str = "Water leak in the basement",
          **kwargs: Any) -> Batch:
    return Batch(channel=Channel.VOICE,
                 items=(BatchItem("d1", "a1", number, text, text),), **kwargs)


# -- options and description -----------------------------------------------------------------

def test_registry_and_capabilities(make: Factory) -> None:
    assert adapter_class("exolve_voice") is ExolveVoiceProvider
    provider = make(poll_interval=5, deadline=120)
    caps = provider.capabilities
    assert caps.channels == frozenset({Channel.VOICE})
    assert caps.max_recipients == 1
    assert caps.number_format is NumberFormat.DIGITS
    assert (caps.poll_interval, caps.tracking_deadline) == (5.0, 120.0)


def test_every_option_is_described() -> None:
    for schema in (ExolveVoiceProvider.options_schema, ExolveVoiceProvider.alert_options_schema):
        for marker in schema:
            assert marker.description, marker


def test_option_defaults_and_validation() -> None:
    options = ExolveVoiceProvider.validate_options({"api_key": API_KEY, "source": "+74959999999"})
    assert options["base_url"] == "https://api.exolve.ru"
    assert options["tts"] is True and options["tts_voice"] == 1 and options["tts_lang"] == 1
    assert options["tts_max_chars"] == 1000 and options["status_map"] == {}
    assert (options["timeout"], options["retry_attempts"]) == (15.0, 4)
    for bad in ({"source": "+7 495 999"}, {"api_key": "short"}, {"base_url": "api.exolve.ru"},
                {"status_map": {"modified": "bogus"}}, {"tts_speed": 0}):
        with pytest.raises(vol.Invalid):
            ExolveVoiceProvider.validate_options({"api_key": API_KEY, "source": SOURCE, **bad})
    assert ExolveVoiceProvider.validate_alert_options({"service_id": "x", "tts_voice": "2"}) == {
        "service_id": "x", "tts_voice": 2}
    with pytest.raises(vol.Invalid):
        ExolveVoiceProvider.validate_alert_options({"unknown": 1})


def test_api_key_is_registered_as_secret(make: Factory) -> None:
    provider = make()
    assert provider.context.redactor.text(f"key={API_KEY}") == f"key={MASK}"


# -- placing calls ---------------------------------------------------------------------------

async def test_submit_tts_sends_documented_body(make: Factory, emu: ExolveEmulator) -> None:
    submission = await make().submit(batch())
    [request] = emu.requests_to("/call/v1/MakeVoiceMessage")
    assert request.authorization == f"Bearer {API_KEY}"
    assert request.body == {"source": SOURCE, "destination": "79991234560",
                            "tts": {"text": "Water leak in the basement", "voice": 1, "lang": 1}}
    [item] = submission.items
    assert item.state is DeliveryState.SUBMITTED
    assert item.provider_message_id == submission.provider_ref
    assert submission.provider_ref is not None and submission.provider_ref.startswith("cal")
    assert submission.data == {"call_id": submission.provider_ref, "mode": "tts",
                               "source": SOURCE}


async def test_tts_options_and_alert_overrides(make: Factory, emu: ExolveEmulator) -> None:
    provider = make(tts_voice=2, tts_lang=3, tts_speed=0.9, tts_volume=5, tts_emotion="good")
    await provider.submit(batch())
    await provider.submit(batch(options={"tts_voice": 4, "tts_lang": 1, "tts_speed": 1.2,
                                         "tts_volume": 1.5, "tts_emotion": 2}))
    first, second = (r.body["tts"] for r in emu.requests_to("/call/v1/MakeVoiceMessage"))
    assert first == {"text": "Water leak in the basement", "voice": 2, "lang": 3, "speed": 0.9,
                     "volume": 5, "emotion": "good"}
    assert second == {"text": "Water leak in the basement", "voice": 4, "lang": 1, "speed": 1.2,
                      "volume": 1.5, "emotion": 2}


async def test_service_id_modes(make: Factory, emu: ExolveEmulator) -> None:
    setup = make()
    configured = await setup.create_voice_message("configured", 1967)
    per_alert = await setup.create_voice_message("per alert", 1979)
    provider = make(service_id=configured.id)
    first = await provider.submit(batch())
    await provider.submit(batch(options={"service_id": per_alert.id}))
    await provider.submit(batch(options={"tts": True}))
    bodies = [r.body for r in emu.requests_to("/call/v1/MakeVoiceMessage")]
    assert bodies[0] == {"source": SOURCE, "destination": "79991234560",
                         "service_id": configured.id}
    assert bodies[1]["service_id"] == per_alert.id and "tts" not in bodies[1]
    assert "service_id" not in bodies[2] and bodies[2]["tts"]["text"]
    assert first.data["mode"] == "service" and first.data["service_id"] == configured.id


@pytest.mark.parametrize(("provider_options", "alert_options"), [
    ({"prefer_tts": True}, {}), ({}, {"tts": True})])
async def test_refused_tts_falls_back_to_the_service_id(
        make: Factory, emu: ExolveEmulator, clock: ManualClock,
        provider_options: dict[str, Any], alert_options: dict[str, Any]) -> None:
    """TTS rests on third-party clients only: a validation error plays the service_id instead."""
    message = await make().create_voice_message("leak", 1967)
    emu.tts_accepted = False
    provider = make(service_id=message.id, **provider_options)
    submission = await provider.submit(batch(options=alert_options))
    first, second = (r.body for r in emu.requests_to("/call/v1/MakeVoiceMessage"))
    assert first["tts"]["text"] == "Water leak in the basement" and "service_id" not in first
    assert second == {"source": SOURCE, "destination": "79991234560", "service_id": message.id}
    assert submission.data["mode"] == "service" and "Validation error" in submission.data[
        "tts_refused"]
    clock.advance(20)
    [update] = await provider.poll(submission)
    assert update.state is DeliveryState.DELIVERED
    assert (update.details["mode"], update.details["service_id"]) == ("service", message.id)
    assert "Validation error" in update.details["tts_refused"]  # the report says which was used


async def test_tts_used_when_accepted_and_said_so(make: Factory, emu: ExolveEmulator,
                                                  clock: ManualClock) -> None:
    message = await make().create_voice_message("leak", 1967)
    provider = make(service_id=message.id, prefer_tts=True)
    submission = await provider.submit(batch())
    assert len(emu.requests_to("/call/v1/MakeVoiceMessage")) == 1
    clock.advance(20)
    [update] = await provider.poll(submission)
    assert update.details["mode"] == "tts" and "tts_refused" not in update.details


@pytest.mark.parametrize("case", ["no service_id", "fallback off", "trial refusal"])
async def test_no_fallback_without_a_service_id_or_for_other_refusals(
        make: Factory, emu: ExolveEmulator, case: str) -> None:
    message = await make().create_voice_message("leak", 1967)
    if case == "no service_id":
        emu.tts_accepted, provider = False, make()
    elif case == "fallback off":
        emu.tts_accepted = False
        provider = make(service_id=message.id, prefer_tts=True, service_fallback=False)
    else:
        emu.trial, emu.confirmed_numbers = True, {"79991234561"}
        provider = make(service_id=message.id, prefer_tts=True)
    with pytest.raises(RejectedError) as info:
        await provider.submit(batch())
    assert info.value.status == 400
    assert len(emu.requests_to("/call/v1/MakeVoiceMessage")) == 1


async def test_no_content_when_tts_disabled(make: Factory, emu: ExolveEmulator) -> None:
    for provider, options in ((make(tts=False), {}), (make(), {"tts": False})):
        with pytest.raises(ValidationError) as info:
            await provider.submit(batch(options=options))
        assert info.value.field == "options.service_id"
    assert emu.requests == []


async def test_sender_overrides_source(make: Factory, emu: ExolveEmulator) -> None:
    provider = make(source="+74959999999")
    await provider.submit(batch())
    await provider.submit(batch(sender="+74951112233"))
    await provider.submit(batch(sender="74951112234"))
    sources = [r.body["source"] for r in emu.requests_to("/call/v1/MakeVoiceMessage")]
    assert sources == ["74959999999", "74951112233", "74951112234"]
    with pytest.raises(ValidationError) as info:
        await provider.submit(batch(sender="ACME"))
    assert info.value.field == "sender"


async def test_tts_text_limits(make: Factory, emu: ExolveEmulator) -> None:
    with pytest.raises(RejectedError, match=r"1001 characters.*at most 1000"):
        await make().submit(batch(text="x" * 1001))
    with pytest.raises(RejectedError, match="at most 10"):
        await make(tts_max_chars=10).submit(batch(text="eleven char"))
    with pytest.raises(RejectedError, match="non-empty"):
        await make().submit(batch(text="  "))
    assert emu.requests == []
    await make().submit(batch(text="я" * 1000))
    assert len(emu.requests_to("/call/v1/MakeVoiceMessage")) == 1


async def test_one_recipient_per_call(make: Factory) -> None:
    items = tuple(BatchItem(f"d{i}", "a1", f"+7999123456{i}", "t", "t") for i in range(2))
    with pytest.raises(ValidationError, match="one call per request"):
        await make().submit(Batch(channel=Channel.VOICE, items=items))


async def test_audio_url_is_ignored_with_a_warning(make: Factory, emu: ExolveEmulator,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    await make().submit(batch(audio_url="https://example.org/a.wav"))
    assert "audio_url is not supported" in caplog.text
    assert "tts" in emu.requests_to("/call/v1/MakeVoiceMessage")[0].body


async def test_numeric_call_ids_are_sent_back_as_numbers(make: Factory,
                                                         emu: ExolveEmulator) -> None:
    emu.numeric_call_ids = True
    provider = make()
    submission = await provider.submit(batch())
    assert isinstance(submission.data["call_id"], int)
    assert submission.provider_ref == str(submission.data["call_id"])
    [update] = await provider.poll(submission)
    assert emu.requests_to("/call/v1/GetInfo")[0].body == {"call_id": submission.data["call_id"]}
    assert update.provider_status == "queued"


# -- tracking --------------------------------------------------------------------------------

@pytest.mark.parametrize(("digit", "status", "state", "reason", "seconds"), [
    ("0", "completed", DeliveryState.DELIVERED, None, 15),
    ("4", "busy", DeliveryState.FAILED, "busy", 3),
    ("5", "no_answer", DeliveryState.FAILED, "no answer", 60),
    ("6", "rejected", DeliveryState.FAILED, "rejected by the callee", 4),
    ("7", "failed", DeliveryState.FAILED, "call failed", 1),
    ("8", "canceled", DeliveryState.CANCELLED, "call cancelled at the provider", 2),
])
async def test_call_outcomes(make: Factory, clock: ManualClock, digit: str, status: str,
                             state: DeliveryState, reason: str | None, seconds: int) -> None:
    provider = make()
    submission = await provider.submit(batch(f"+7999123456{digit}"))
    clock.advance(seconds - 0.5)
    [early] = await provider.poll(submission)
    assert early.state is DeliveryState.SUBMITTED and not early.state.final
    clock.advance(0.5)
    [update] = await provider.poll(submission)
    assert (update.state, update.provider_status, update.reason) == (state, status, reason)
    assert update.delivery_id == "d1" and update.number == f"+7999123456{digit}"
    assert update.provider_message_id == submission.provider_ref
    assert update.at == submission.submitted_at + timedelta(seconds=seconds)
    assert update.details["ended"] == update.at.isoformat()
    assert update.details["duration"] == (11 if digit == "0" else 0)
    assert update.details["timeout"] == 60 and update.details["direction"] == "outbound"


async def test_progress_statuses_are_not_final(make: Factory, clock: ManualClock) -> None:
    provider = make()
    submission = await provider.submit(batch("+79991234561"))
    seen = []
    for step in (0, 4, 1, 9):
        clock.advance(step)
        [update] = await provider.poll(submission)
        assert update.state is DeliveryState.SUBMITTED and update.reason is None
        seen.append(update.provider_status)
    assert seen == ["queued", "answered", "talk", "play_audio_stop"]
    assert "started" in update.details and "duration" not in update.details


async def test_never_final_call_stays_open(make: Factory, clock: ManualClock) -> None:
    provider = make()
    submission = await provider.submit(batch("+79991234569"))
    clock.advance(86400)
    [update] = await provider.poll(submission)
    assert (update.state, update.provider_status) == (DeliveryState.SUBMITTED, "queued")


async def test_undocumented_statuses(make: Factory, emu: ExolveEmulator) -> None:
    provider = make()
    submission = await provider.submit(batch("+79991234569"))
    emu.set_status(submission.data["call_id"], "ringing-somewhere")
    [update] = await provider.poll(submission)
    assert (update.state, update.provider_status) == (DeliveryState.SUBMITTED,
                                                      "ringing-somewhere")
    emu.set_status(submission.data["call_id"], "modified")
    [update] = await provider.poll(submission)
    assert update.state is DeliveryState.FAILED and "modified" in (update.reason or "")
    mapped = make(status_map={"modified": "sent", "Ringing Somewhere": "failed"})
    [update] = await mapped.poll(submission)
    assert (update.state, update.reason) == (DeliveryState.SENT, None)
    emu.set_status(submission.data["call_id"], "ringing-somewhere")
    [update] = await mapped.poll(submission)
    assert (update.state, update.reason) == (DeliveryState.FAILED, "call ringing-somewhere")


def test_status_spelling_variants() -> None:
    assert map_status("no answer")[0] is DeliveryState.FAILED
    assert map_status("No-Answer") == (DeliveryState.FAILED, "no answer")
    assert map_status("CANCELLED")[0] is DeliveryState.CANCELLED
    assert map_status("Completed") == (DeliveryState.DELIVERED, None)
    assert map_status(None) == (DeliveryState.SUBMITTED, None)


async def test_poll_not_found_fails_the_delivery(make: Factory, emu: ExolveEmulator) -> None:
    provider = make()
    message = await provider.create_voice_message("m", 1979)
    submission = await provider.submit(batch(options={"service_id": message.id}))
    emu.media_ids.discard(1979)  # the voice message's audio file is gone
    [update] = await provider.poll(submission)
    assert update.state is DeliveryState.FAILED and update.provider_status == "HTTP 404"
    assert "Not Found" in (update.reason or "") and "no media file" in (update.reason or "")


async def test_poll_auth_error_propagates(make: Factory, emu: ExolveEmulator) -> None:
    submission = await make().submit(batch())
    with pytest.raises(AuthError, match="malformed token"):
        await make(api_key="wrong-key-000000").poll(submission)


# -- voice-message resources -----------------------------------------------------------------

async def test_voice_message_lifecycle(make: Factory, emu: ExolveEmulator) -> None:
    provider = make()
    created = await provider.create_voice_message("Тестовая голосовая SMS", 1967, digit=5,
                                                  redirect_number="+79295800000")
    assert emu.requests_to("/voice-message/v1/Create")[0].body == {
        "name": "Тестовая голосовая SMS", "media_id": 1967,
        "redirect_info": {"digit": 5, "redirect_number": "79295800000"}}
    assert (created.digit, created.redirect_number) == (5, "79295800000")
    plain = await provider.create_voice_message("plain", 1979)
    assert emu.requests_to("/voice-message/v1/Create")[1].body == {"name": "plain",
                                                                   "media_id": 1979}
    default_digit = await provider.create_voice_message("d", 1979, redirect_number="79295800001")
    assert default_digit.digit == 0
    listed = await provider.list_voice_messages()
    assert [m.id for m in listed] == [created.id, plain.id, default_digit.id]
    assert listed[0].name == "Тестовая голосовая SMS" and listed[0].created_at is not None
    info = await provider.get_voice_message(created.id)
    assert (info.id, info.media_id, info.digit, info.redirect_number) == (
        created.id, 1967, 5, "79295800000")
    assert info.created_at == listed[0].created_at
    await provider.delete_voice_message(created.id)
    assert emu.requests_to("/voice-message/v1/Delete")[0].body == {"id": created.id}
    with pytest.raises(RejectedError, match="Scenario not found"):
        await provider.get_voice_message(created.id)
    with pytest.raises(RejectedError, match="error getting application"):
        await provider.delete_voice_message(created.id)
    assert emu.requests_to("/voice-message/v1/GetList")[0].body == {}


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"name": " ", "media_id": 1}, "name"),
    ({"name": "n", "media_id": -1}, "media_id"),
    ({"name": "n", "media_id": 1, "digit": 10, "redirect_number": "79295800000"}, "digit"),
    ({"name": "n", "media_id": 1, "digit": 3}, "redirect_number"),
    ({"name": "n", "media_id": 1, "redirect_number": "7929"}, "redirect_number"),
    ({"name": "n", "media_id": 1, "redirect_number": "+7929580000012345"}, "redirect_number"),
])
async def test_create_validation(make: Factory, emu: ExolveEmulator, kwargs: dict[str, Any],
                                 field: str) -> None:
    with pytest.raises(ValidationError) as info:
        await make().create_voice_message(**kwargs)
    assert info.value.field == field
    assert emu.requests == []


async def test_check(make: Factory, emu: ExolveEmulator) -> None:
    info = await make().check()
    assert info.details == {"voice_messages": 0, "mode": "tts"}
    message = await make().create_voice_message("m", 1967)
    info = await make(service_id=message.id).check()
    assert info.details["mode"] == "service" and info.details["service"]["media_id"] == 1967
    with pytest.raises(RejectedError, match="service_id 'gone': HTTP 404: Scenario not found"):
        await make(service_id="gone").check()
    with pytest.raises(AuthError, match="error getting JWT Token claims"):
        await make(api_key="wrong-key-000000").check()


# -- documented errors -----------------------------------------------------------------------

@pytest.mark.parametrize(("path", "status", "message", "error", "english"), [
    ("/voice-message/v1/Create", 400, "failed to parse token", AuthError, "API key is wrong"),
    ("/voice-message/v1/GetList", 401, "error getting JWT Token claims", AuthError,
     "cannot be read"),
    ("/voice-message/v1/GetInfo", 403, "Customer is not in correct status", AuthError,
     "not activated or is blocked"),
    ("/voice-message/v1/Create", 404, "error getting media resource", RejectedError,
     "no audio file"),
    ("/call/v1/MakeVoiceMessage", 400, "Validation error. Please enter valid parameter values.",
     RejectedError, "parameter is invalid"),
    ("/call/v1/MakeVoiceMessage", 401, "malformed token", AuthError, "missing or malformed"),
    ("/call/v1/GetInfo", 400, "Validation error. Please enter valid parameter values",
     RejectedError, "parameter is invalid"),
])
@pytest.mark.parametrize("style", ["error", "grpc", "nested", "text"])
async def test_documented_errors(make: Factory, emu: ExolveEmulator, path: str, status: int,
                                 message: str, error: type[ProviderError], english: str,
                                 style: str) -> None:
    emu.error_style = style
    emu.fail_next(status, message, path=path)
    provider = make()
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "/voice-message/v1/Create": lambda: provider.create_voice_message("n", 1967),
        "/voice-message/v1/GetList": provider.list_voice_messages,
        "/voice-message/v1/GetInfo": lambda: provider.get_voice_message("x"),
        "/call/v1/MakeVoiceMessage": lambda: provider.submit(batch()),
        "/call/v1/GetInfo": lambda: provider.get_call_info("cal1")}
    with pytest.raises(error) as info:
        await calls[path]()
    assert type(info.value) is error and info.value.status == status
    assert message in str(info.value) and english in str(info.value)
    if style in ("grpc", "nested"):
        assert info.value.code is not None


async def test_emulated_auth_and_account_errors(make: Factory, emu: ExolveEmulator) -> None:
    wrong = make(api_key="wrong-key-000000")
    with pytest.raises(AuthError, match="401: error getting JWT Token claims"):
        await wrong.list_voice_messages()
    with pytest.raises(AuthError, match="401: malformed token"):
        await wrong.submit(batch())
    emu.customer_blocked = True
    provider = make()
    with pytest.raises(AuthError, match="403: Customer is not in correct status"):
        await provider.create_voice_message("n", 1967)
    assert await provider.list_voice_messages() == []  # GetList documents no 403
    emu.customer_blocked = False
    with pytest.raises(RejectedError, match="404: error getting media resource"):
        await provider.create_voice_message("n", 4242)
    with pytest.raises(RejectedError, match="Validation error"):
        await provider.submit(batch(options={"service_id": "no-such-service"}))


async def test_trial_account_restriction(make: Factory, emu: ExolveEmulator) -> None:
    emu.trial, emu.confirmed_numbers = True, {"79991234560"}
    provider = make()
    with pytest.raises(RejectedError) as info:
        await provider.submit(batch("+79991234561"))
    assert info.value.status == 400
    assert "the client can only call to his own confirmed number" in str(info.value)
    assert "trial accounts may call only" in str(info.value)
    assert (await provider.submit(batch("+79991234560"))).provider_ref


async def test_customer_status_500_is_retried_then_transient(make: Factory, emu: ExolveEmulator,
                                                            clock: ManualClock) -> None:
    emu.customer_unreachable = True
    with pytest.raises(TransientError, match=r"500: error getting customer status.*temporary"):
        await make(retry_attempts=3).list_voice_messages()
    assert len(emu.requests_to("/voice-message/v1/GetList")) == 3
    assert len(clock.slept) == 2


# -- retries ---------------------------------------------------------------------------------

async def test_429_after_burst_raises_with_retry_after(make: Factory, emu: ExolveEmulator,
                                                       clock: ManualClock) -> None:
    # a rate limit is not retried in a loop: the dispatcher pauses the provider (dispatch.py)
    emu.burst, emu.retry_after = 2, 3
    provider = make()
    for _ in range(2):
        await provider.list_voice_messages()
    with pytest.raises(RateLimitedError) as info:
        await provider.list_voice_messages()
    assert info.value.retry_after == 3.0 and clock.slept == []
    assert len(emu.requests) == 3


async def test_429_raises_rate_limited_at_once(make: Factory, emu: ExolveEmulator,
                                               clock: ManualClock) -> None:
    emu.fail_next(429, "too many requests", count=5, retry_after=2)
    with pytest.raises(RateLimitedError) as info:
        await make(retry_attempts=2).submit(batch())
    assert info.value.retry_after == 2.0 and clock.slept == []


async def test_5xx_retried_with_backoff(make: Factory, emu: ExolveEmulator,
                                        clock: ManualClock) -> None:
    emu.fail_next(502, "bad gateway", count=2, path="/call/v1/MakeVoiceMessage")
    submission = await make(retry_base_delay=0.5).submit(batch())
    assert submission.provider_ref
    assert len(emu.requests_to("/call/v1/MakeVoiceMessage")) == 3
    assert len(clock.slept) == 2
    assert 0.4 <= clock.slept[0] <= 0.6 and 0.8 <= clock.slept[1] <= 1.2


async def test_503_retried_once_then_raised(make: Factory, emu: ExolveEmulator,
                                            clock: ManualClock) -> None:
    emu.fail_next(503, "unavailable", count=2, path="/call/v1/MakeVoiceMessage")
    with pytest.raises(TransientError, match="503"):
        await make(retry_base_delay=0.5).submit(batch())
    assert len(emu.requests_to("/call/v1/MakeVoiceMessage")) == 2


async def test_5xx_exhausted_and_retry_max_delay(make: Factory, emu: ExolveEmulator,
                                                 clock: ManualClock) -> None:
    emu.fail_next(502, "bad gateway", count=10)
    with pytest.raises(TransientError, match="502"):
        await make(retry_attempts=4, retry_base_delay=2, retry_max_delay=3).check()
    assert len(emu.requests) == 4
    assert clock.slept[0] <= 2.4 and all(wait <= 3.6 for wait in clock.slept)


async def test_slow_answers_time_out(make: Factory, emu: ExolveEmulator) -> None:
    emu.delay = 5.0  # the timeouts leave time to send each request on a busy machine
    with pytest.raises(TransientError, match="timed out"):
        await make(timeout=0.5, retry_attempts=3).submit(batch())
    assert len(emu.requests) == 1  # a POST that may have placed a call is not repeated
    with pytest.raises(TransientError, match="timed out"):
        await make(timeout=0.5, retry_attempts=2).list_voice_messages()
    assert len(emu.requests) == 3  # read-only methods are retried


async def test_shared_http_client_is_not_closed(emu: ExolveEmulator, clock: ManualClock) -> None:
    async with httpx.AsyncClient() as client:
        options = ExolveVoiceProvider.validate_options(
            {"api_key": API_KEY, "source": SOURCE, "base_url": emu.base_url})
        provider = ExolveVoiceProvider("exolve", options, ProviderContext(clock=clock,
                                                                           http=client))
        await provider.check()
        await provider.aclose()
        assert not client.is_closed


# -- secrets ---------------------------------------------------------------------------------

async def test_no_credential_in_logs_or_errors(make: Factory, emu: ExolveEmulator,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    provider = make()
    await provider.poll(await provider.submit(batch()))
    errors: list[Exception] = []
    emu.fail_next(503, f"echo Bearer {API_KEY}", count=4)
    emu.fail_next(401, f"malformed token {API_KEY}")
    for call in (provider.check, provider.check):
        try:
            await call()
        except ProviderError as err:
            errors.append(err)
    wrong = make(api_key=API_KEY[::-1])
    try:
        await wrong.submit(batch())
    except AuthError as err:
        errors.append(err)
    assert len(errors) == 3 and caplog.records
    assert API_KEY not in caplog.text and API_KEY[::-1] not in caplog.text
    for error in errors:
        assert API_KEY not in str(error) and API_KEY[::-1] not in str(error)


# -- tolerant parsing ------------------------------------------------------------------------

def test_parse_variants() -> None:
    assert [m.id for m in parse_voice_message_list("p", {"voice_messages": [{"id": 7}]})] == ["7"]
    assert parse_voice_message_list("p", {}) == []
    nested = parse_voice_message("p", {"id": "v", "media_id": "1967",
                                       "redirect_info": {"digit": 5, "redirect_number": "7929"}})
    assert (nested.media_id, nested.digit, nested.redirect_number) == (1967, 5, "7929")
    rfc = parse_time("Wed, 29 Mar 2023 10:32:45 +0000")
    assert rfc is not None and rfc.isoformat() == "2023-03-29T10:32:45+00:00"
    iso = parse_time("2022-12-15T10:23:54.912Z")
    assert iso is not None and iso.microsecond == 912000
    assert parse_time("yesterday") is None and parse_time(None) is None
    seed_answer = {"call_id": "caldf32f642-6313-4dae-94db-98502ad3249c",
                   "created": "Wed, 29 Mar 2023 10:32:45 +0000",
                   "updated": "Wed, 29 Mar 2023 10:33:07 +0000",
                   "started": "Wed, 29 Mar 2023 10:32:58 +0000",
                   "ended": "Wed, 29 Mar 2023 10:33:07 +0000", "duration": 9, "timeout": 60,
                   "status": "completed", "direction": "outbound", "source": "79990557296",
                   "destination": "79995556789"}
    info = parse_call_info("p", "x", seed_answer)
    assert (info.status, info.duration, info.timeout) == ("completed", 9, 60)
    assert json.dumps(info.details())  # JSON-safe for the store


@pytest.mark.parametrize(("body", "code", "message"), [
    ('{"error":"Customer is not in correct status"}', None,
     "Customer is not in correct status (the Exolve account is not activated or is blocked)"),
    ('{"code":16,"message":"malformed token","details":[]}', "16",
     "malformed token (the application API key is missing or malformed: check api_key)"),
    ('{"error":{"code":404,"message":"Сценарий не найден"}}', "404", "Сценарий не найден"),
    ("", None, None),
])
def test_describe_error(body: str, code: str | None, message: str | None) -> None:
    response = httpx.Response(400, text=body)
    assert describe_error(response) == (code, message)


# -- CLI -------------------------------------------------------------------------------------

def cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="alertline")
    add_exolve_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["exolve", *argv])


async def test_cli_voice_messages(make: Factory, capsys: pytest.CaptureFixture[str]) -> None:
    provider = make()
    assert await run_exolve(cli_args("voice-messages", "create", "--name", "Leak", "--media-id",
                                     "1967", "--digit", "5", "--redirect-number",
                                     "+79295800000", "--json"), provider) == 0
    created = json.loads(capsys.readouterr().out)
    assert (created["name"], created["digit"], created["redirect_number"]) == (
        "Leak", 5, "79295800000")
    assert await run_exolve(cli_args("voice-messages", "list"), provider) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["ID", "NAME", "CREATED"] and created["id"] in out
    assert await run_exolve(cli_args("voice-messages", "list", "--json"), provider) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == created["id"]
    assert await run_exolve(cli_args("voice-messages", "show", created["id"]), provider) == 0
    assert "redirect_number: 79295800000" in capsys.readouterr().out
    assert await run_exolve(cli_args("voice-messages", "delete", created["id"]), provider) == 0
    assert capsys.readouterr().out == f"deleted voice message {created['id']}\n"
    assert await run_exolve(cli_args("voice-messages", "show", created["id"]), provider) == 1
    assert "Scenario not found" in capsys.readouterr().err
    assert await run_exolve(cli_args("voice-messages", "list"), provider) == 0
    assert capsys.readouterr().out == "no voice messages\n"


async def test_cli_usage_errors(make: Factory, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_args("voice-messages", "create", "--name", "x", "--media-id", "1", "--digit", "12")
    capsys.readouterr()
    args = cli_args("voice-messages", "create", "--name", "x", "--media-id", "1", "--digit", "3")
    assert await run_exolve(args, make()) == 2
    assert "redirect_number" in capsys.readouterr().err
