"""Tests for the Fortytwo Voice adapter, against the emulator over real HTTP."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import voluptuous as vol

from alertline.clock import ManualClock
from alertline.errors import (
    AuthError,
    ProviderAnswerError,
    ProviderError,
    ProviderRefusedError,
    RateLimitedError,
    RejectedError,
    TransientError,
    ValidationError,
)
from alertline.model import Channel, DeliveryState
from alertline.providers import StatusMode, adapter_class
from alertline.providers.base import Batch, BatchItem, ProviderContext
from alertline.providers.fortytwo.voice import FortytwoVoiceProvider
from alertline.providers.fortytwo.wire import client_job_id
from alertline.redact import Redactor
from tests.emulators.fortytwo import FortytwoVoiceEmulator
from tests.engine_harness import EngineHarness, make_config

TOKEN = "7c1e5a2b-93d4-4f0a-b6e8-2d9c0f1a4b57"
TEXT = "Water leak in the basement"


@pytest.fixture
async def emulator(clock: ManualClock) -> AsyncIterator[FortytwoVoiceEmulator]:
    async with FortytwoVoiceEmulator(TOKEN, now=lambda: clock.now().timestamp()) as emu:
        yield emu


@pytest.fixture
def make(emulator: FortytwoVoiceEmulator, clock: ManualClock, http: httpx.AsyncClient) -> Any:
    def factory(callback_base: str | None = "http://127.0.0.1:9/postbacks/{provider}/s3cr3t-path",
                **options: Any) -> FortytwoVoiceProvider:
        context = ProviderContext(clock=clock, http=http, redactor=Redactor(),
                                  callback_base_url=callback_base)
        return FortytwoVoiceProvider(
            "ft", {"token": TOKEN, "base_url": emulator.base_url, **options}, context)
    return factory


def batch(*numbers: str, text: str = TEXT, alert: str = "alert-0001", **kwargs: Any) -> Batch:
    items = tuple(BatchItem(delivery_id=f"dlv-{index}", alert_id=alert, number=number,
                            text=text, template=text)
                  for index, number in enumerate(numbers or ("+35699000010",)))
    return Batch(channel=Channel.VOICE, items=items, **kwargs)


# -- jobs on the wire ------------------------------------------------------------------------

async def test_tts_job_sends_every_option(make: Any, emulator: FortytwoVoiceEmulator) -> None:
    provider = make(callback_url="https://hooks.example.org/ft", sender_id="+356 2123 4567",
                    tts_voice="woman", tts_lang="en-GB", time_limit_seconds=600,
                    ring_timeout_seconds=60, enable_menu_response=True,
                    voice_content={"retries": "2"})
    submission = await provider.submit(batch("+35699000010", "+35699000016", locale=None))
    request = emulator.requests[-1]
    assert (request.method, request.path) == ("POST", "/1/voice")
    assert request.headers["Authorization"] == f"Token {TOKEN}"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert request.body == {
        "destinations": [{"number": "35699000010", "custom_id": "dlv-0"},
                         {"number": "35699000016", "custom_id": "dlv-1"}],
        "voice_content": {"retries": "2", "sender_id": "35621234567", "tts_text": TEXT,
                          "tts_voice": "woman", "tts_lang": "en-GB",
                          "time_limit_seconds": "600", "ring_timeout_seconds": "60",
                          "enable_menu_response": True},
        "job_id": "alert-0001",
        "callback_url": "https://hooks.example.org/ft",
    }
    job = emulator.jobs[submission.provider_ref or ""]
    assert len(job.api_job_id) == 36
    ids = [f"{job.api_job_id}:{c.message_id}" for c in job.calls]  # matched by job and message
    assert [(i.delivery_id, i.number, i.provider_message_id, i.state, i.provider_status)
            for i in submission.items] == [
        ("dlv-0", "+35699000010", ids[0], DeliveryState.SUBMITTED, "QUEUED"),
        ("dlv-1", "+35699000016", ids[1], DeliveryState.SUBMITTED, "QUEUED")]
    assert submission.data == {"api_job_id": job.api_job_id, "client_job_id": "alert-0001",
                               "job_type": "TTS", "callback": True, "tts_lang": "en-GB"}


async def test_numbers_as_json_integers(make: Any, emulator: FortytwoVoiceEmulator) -> None:
    await make(numbers_as_strings=False, time_limit_seconds=30).submit(batch())
    assert emulator.requests[-1].body["voice_content"]["time_limit_seconds"] == 30


async def test_audio_job_sends_no_tts_fields(make: Any, emulator: FortytwoVoiceEmulator) -> None:
    provider = make(tts_voice="man", tts_lang="en-GB", sender_id="356123456")
    submission = await provider.submit(
        batch(audio_url="https://cdn.example.org/audio/leak-alert_1.mp3", locale="de_DE"))
    assert emulator.requests[-1].body["voice_content"] == {
        "sender_id": "356123456", "audio_file_url": "https://cdn.example.org/audio/leak-alert_1.mp3"}
    assert submission.data["job_type"] == "AUDIO"


async def test_alert_sender_and_options_win(make: Any, emulator: FortytwoVoiceEmulator) -> None:
    provider = make(sender_id="356123456", tts_voice="man", time_limit_seconds=600,
                    enable_menu_response=True, voice_content={"retries": "1"},
                    tts_languages=["en-GB", "fr-FR"])
    await provider.submit(batch(sender="+35699111222", options={
        "tts_voice": "WOMAN", "tts_lang": "fr-FR", "time_limit_seconds": 45,
        "ring_timeout_seconds": 20, "enable_menu_response": False,
        "voice_content": {"retries": "3"}}))
    assert emulator.requests[-1].body["voice_content"] == {
        "retries": "3", "sender_id": "35699111222", "tts_text": TEXT, "tts_voice": "WOMAN",
        "tts_lang": "fr-FR", "time_limit_seconds": "45", "ring_timeout_seconds": "20",
        "enable_menu_response": False}


OURS = {"tts_languages": ["en-GB", "de-DE", "it-IT"]}  # what a token's Control Panel lists


@pytest.mark.parametrize(("options", "locale", "item_locales", "expected"), [
    (OURS, "de_DE", (), "de-DE"),
    ({"tts_languages": []}, "de_DE", (), "de-DE"),  # empty: not checked
    ({}, "de_DE", (), "en-GB"),  # only en-GB is documented
    (OURS, None, ("it_IT", "it_IT"), "it-IT"),
    ({"tts_lang": "en-GB"}, None, ("it_IT", "de_DE"), "en-GB"),
    ({"tts_lang": "en-GB", "use_locale": False, **OURS}, "de_DE", (), "en-GB"),
    ({"tts_lang": "de-DE", **OURS}, "de_AT", (), "de-DE"),
    ({}, None, (), "en-GB"),
])
async def test_tts_lang_from_locale(make: Any, emulator: FortytwoVoiceEmulator,
                                    options: dict[str, Any], locale: str | None,
                                    item_locales: tuple[str, ...], expected: str | None) -> None:
    job = batch("+35699000010", "+35699000020", locale=locale)
    if item_locales:
        job = Batch(channel=job.channel, locale=locale, items=tuple(
            BatchItem(delivery_id=i.delivery_id, alert_id=i.alert_id, number=i.number,
                      text=i.text, template=i.template, locale=loc)
            for i, loc in zip(job.items, item_locales, strict=True)))
    await make(**options).submit(job)
    assert emulator.requests[-1].body["voice_content"].get("tts_lang") == expected


@pytest.mark.parametrize(("reference", "expected"), [
    ("alert-0001", "alert-0001"),
    ("abc", "al-" + "ba7816bf8f01"),
    ("6f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f", client_job_id("6f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f")),
])
async def test_job_id_fits_seven_to_fifteen(make: Any, emulator: FortytwoVoiceEmulator,
                                            reference: str, expected: str) -> None:
    submission = await make().submit(batch(alert=reference))
    sent = emulator.requests[-1].body["job_id"]
    assert sent == expected and 7 <= len(sent) <= 15
    assert submission.data["client_job_id"] == sent


async def test_job_id_and_custom_ids_can_be_left_out(make: Any,
                                                     emulator: FortytwoVoiceEmulator) -> None:
    submission = await make(send_job_id=False, send_custom_ids=False).submit(batch())
    body = emulator.requests[-1].body
    assert "job_id" not in body and body["destinations"] == [{"number": "35699000010"}]
    job = emulator.jobs[submission.provider_ref or ""]
    assert submission.items[0].provider_message_id == f"{job.api_job_id}:{job.calls[0].message_id}"


@pytest.mark.parametrize(("base", "options", "expected"), [
    ("http://h:8787/postbacks/{provider}/tok", {"callback_url": "https://x.example/cb"},
     "https://x.example/cb"),
    ("http://h:8787/postbacks/{provider}/tok", {}, "http://h:8787/postbacks/ft/tok"),
    ("https://ha.example/api/webhook/abc?provider={provider}", {},
     "https://ha.example/api/webhook/abc?provider=ft"),
    ("http://h:8787/hooks", {}, "http://h:8787/hooks/ft"),
])
async def test_callback_url(make: Any, emulator: FortytwoVoiceEmulator, base: str,
                            options: dict[str, Any], expected: str) -> None:
    await make(callback_base=base, **options).submit(batch())
    assert emulator.requests[-1].body["callback_url"] == expected


async def test_without_callback_url_nothing_is_sent_and_a_warning_logged(
        make: Any, emulator: FortytwoVoiceEmulator, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        submission = await make(callback_base=None).submit(batch())
    assert "callback_url" not in emulator.requests[-1].body
    assert submission.data["callback"] is False
    assert "no callback URL" in caplog.text


# -- local validation with the seed's rules ----------------------------------------------------

AUDIO = "https://cdn.example.org/leak.mp3"


@pytest.mark.parametrize(("job", "options", "field"), [
    (batch(audio_url=AUDIO, options={"tts_voice": "man"}), {}, "options.tts_voice"),
    (batch(audio_url=AUDIO, options={"voice_content": {"tts_text": "x"}}), {},
     "options.voice_content.tts_text"),
    (batch(options={"voice_content": {"audio_file_url": AUDIO}}), {},
     "options.voice_content.audio_file_url"),
    (batch(text="   "), {}, "message"),
    (batch(text="Leak!"), {}, "message"),
    (batch(text="A sixteen chars."), {"tts_text_max_length": 15}, "message"),
    (batch(options={"tts_voice": "robot"}), {}, "options.tts_voice"),
    (batch(sender="+12345"), {}, "sender"),
    (batch(sender="ACME"), {}, "sender"),
    (batch(audio_url="ftp://cdn.example.org/a.mp3"), {}, "audio_url"),
    (batch(audio_url="https://cdn.example.org/my clip.mp3"), {}, "audio_url"),
    (batch(audio_url="https://cdn.example.org/clip.ogg"), {}, "audio_url"),
    (batch(audio_url="https://cdn.example.org/clip%20v2.wav"), {}, "audio_url"),
    (batch(options={"time_limit_seconds": 10}), {}, "options.time_limit_seconds"),
    (batch(options={"ring_timeout_seconds": "soon"}), {}, "options.ring_timeout_seconds"),
    (batch(options={"enable_menu_response": "maybe"}), {}, "options.enable_menu_response"),
    (batch(options={"colour": "blue"}), {}, "options.colour"),
    (batch("+35699000010", "+35699000011"), {"max_destinations": 1}, "to"),
    (batch("+35699000010", "+35699000010"), {}, "to"),
    (batch("+123456"), {}, "to"),
    (Batch(channel=Channel.VOICE, items=()), {}, "to"),
    (Batch(channel=Channel.SMS, items=batch().items), {}, "channel"),
], ids=lambda value: value if isinstance(value, str) else None)
async def test_invalid_jobs_are_refused_before_sending(
        make: Any, emulator: FortytwoVoiceEmulator, job: Batch, options: dict[str, Any],
        field: str) -> None:
    with pytest.raises(ValidationError) as err:
        await make(**options).submit(job)
    assert err.value.field == field
    assert emulator.requests == []


async def test_duplicate_delivery_ids_are_refused(make: Any,
                                                  emulator: FortytwoVoiceEmulator) -> None:
    item = batch().items[0]
    other = BatchItem(delivery_id=item.delivery_id, alert_id="a", number="+35699000011",
                      text=TEXT, template=TEXT)
    with pytest.raises(ValidationError, match="-102"):
        await make().submit(Batch(channel=Channel.VOICE, items=(item, other)))


async def test_personalised_texts_that_differ_cannot_share_a_job(make: Any) -> None:
    items = (BatchItem("d1", "a1", "+35699000010", "Hello Anna, leak", "Hello ${name}, leak"),
             BatchItem("d2", "a1", "+35699000011", "Hello Bert, leak", "Hello ${name}, leak"))
    with pytest.raises(ValidationError) as err:
        await make().submit(Batch(channel=Channel.VOICE, items=items))
    assert err.value.field == "message"


def test_options_are_checked_at_configuration_time() -> None:
    base = {"token": TOKEN}
    for bad in ({"time_limit_seconds": 10}, {"max_destinations": 501}, {"tts_voice": ""},
                {"status_map": {"NOANSWER": "gone"}}, {"base_url": "not a url"}, {}):
        with pytest.raises(vol.Invalid):
            FortytwoVoiceProvider.validate_options({**base, **bad} if bad else {})
    options = FortytwoVoiceProvider.validate_options(base)
    assert (options["base_url"], options["path"], options["max_destinations"]) == (
        "https://rest.fortytwo.com", "/1/voice", 500)


# -- the emulator's answers: codes the adapter cannot know in advance --------------------------

async def test_the_routing_limit_of_the_token(make: Any, emulator: FortytwoVoiceEmulator) -> None:
    emulator.max_destinations = 1
    with pytest.raises(ProviderRefusedError) as err:
        await make().submit(batch("+35699000010", "+35699000011"))
    assert (err.value.code, err.value.status) == ("-86", 403)
    assert "There can only be 1 destination numbers" in str(err.value)


async def test_language_and_text_rules_of_the_api(make: Any,
                                                  emulator: FortytwoVoiceEmulator) -> None:
    """Fortytwo's own limits: another provider of the route may take the call (fails over)."""
    with pytest.raises(ProviderRefusedError, match="TTS language selected is invalid") as err:
        await make(tts_languages=[]).submit(batch(options={"tts_lang": "xx-XX"}))
    assert err.value.code == "-97"
    emulator.tts_text_max = 15
    with pytest.raises(ProviderRefusedError) as err:
        await make().submit(batch())
    assert err.value.code == "-95"


async def test_tts_language_is_checked_before_sending(make: Any,
                                                      emulator: FortytwoVoiceEmulator) -> None:
    """A language the token may not speak falls back (alert, locale, tts_lang, en-GB): no -97."""
    emulator.languages = {"en-GB", "de-DE"}
    submission = await make().submit(batch(options={"tts_lang": "xx-XX"}, locale="de_DE"))
    assert emulator.requests[-1].body["voice_content"]["tts_lang"] == "en-GB"
    assert submission.data["tts_lang"] == "en-GB"
    provider = make(tts_languages=["en-GB", "de-DE"])
    await provider.submit(batch(options={"tts_lang": "xx-XX"}, locale="de_DE"))
    assert emulator.requests[-1].body["voice_content"]["tts_lang"] == "de-DE"
    await provider.submit(batch(locale="fr_FR"))
    assert emulator.requests[-1].body["voice_content"]["tts_lang"] == "en-GB"
    assert len(emulator.jobs) == 3


@pytest.mark.parametrize("account", ["funds", "coverage"])
async def test_funds_and_coverage_refusals_fail_over(make: Any, emulator: FortytwoVoiceEmulator,
                                                     clock: ManualClock, account: str) -> None:
    if account == "funds":
        emulator.funds = False
    else:
        emulator.uncovered_prefixes = {"35699"}
    with pytest.raises(ProviderRefusedError, match="funds or phone number coverage") as err:
        await make().submit(batch())
    assert (err.value.code, err.value.status) == ("-101", 403)
    assert clock.slept == [] and not emulator.jobs  # not retried here: the engine fails over


async def test_server_too_busy_is_a_rate_limit(make: Any, emulator: FortytwoVoiceEmulator,
                                               clock: ManualClock) -> None:
    # raised at once, never retried in a tight loop: the dispatcher pauses the provider
    emulator.busy_jobs = 1
    with pytest.raises(RateLimitedError, match="Server too busy") as err:
        await make(retry_attempts=3).submit(batch())
    assert err.value.code == "-105" and clock.slept == [] and not emulator.jobs
    assert (await make().submit(batch())).provider_ref in emulator.jobs  # busy no more


async def test_test_accounts(make: Any, emulator: FortytwoVoiceEmulator) -> None:
    emulator.test_account_number = "35699000010"
    with pytest.raises(ProviderRefusedError) as err:
        await make().submit(batch("+35699000010", "+35699000011"))
    assert err.value.code == "-122"
    with pytest.raises(ProviderRefusedError, match="personal mobile phone number") as err:
        await make().submit(batch("+35699000011"))
    assert err.value.code == "-123"
    assert (await make().submit(batch("+35699000010"))).provider_ref


@pytest.mark.parametrize(("code", "error"), [
    (-106, ProviderRefusedError), (-108, RejectedError), (-109, ProviderRefusedError),
    (-110, ProviderRefusedError)])
async def test_audio_file_problems(make: Any, emulator: FortytwoVoiceEmulator, code: int,
                                   error: type[ProviderError]) -> None:
    emulator.audio_failures[AUDIO] = code
    with pytest.raises(RejectedError) as err:
        await make().submit(batch(audio_url=AUDIO))
    assert err.value.code == str(code) and type(err.value) is error


_TTS = {"tts_text": TEXT}
_DEST = [{"number": "35699000010"}]


@pytest.mark.parametrize(("raw", "code"), [
    (b"{", -80), (b"[]", -80), ({"destinations": _DEST, "voice_content": _TTS, "x": 1}, -82),
    ({"destinations": {}, "voice_content": _TTS}, -83), ({"destinations": [{}],
                                                          "voice_content": _TTS}, -84),
    ({"destinations": [{"number": "123456"}], "voice_content": _TTS}, -85),
    ({"destinations": [{"number": "+-"}], "voice_content": _TTS}, -87),
    ({"voice_content": _TTS}, -88), ({"destinations": _DEST, "voice_content": {}}, -89),
    ({"destinations": _DEST, "voice_content": {**_TTS, "audio_file_url": AUDIO}}, -81),
    ({"destinations": _DEST, "voice_content": {"audio_file_url": AUDIO, "tts_lang": "en-GB"}},
     -90),
    ({"destinations": _DEST, "voice_content": {**_TTS, "audio_file_url": ""}}, -91),
    ({"destinations": _DEST, "voice_content": {**_TTS, "sender_id": "12345"}}, -92),
    ({"destinations": _DEST, "voice_content": {**_TTS, "enable_menu_response": "yes"}}, -93),
    ({"destinations": _DEST, "voice_content": {"tts_text": "Leak"}}, -95),
    ({"destinations": _DEST, "voice_content": {**_TTS, "tts_voice": "robot"}}, -96),
    ({"destinations": _DEST}, -98), ({"destinations": _DEST, "voice_content": _TTS,
                                      "job_id": "abc"}, -99),
    ({"destinations": [{"number": "35699000010", "custom_id": "a"},
                       {"number": "35699000011", "custom_id": "a"}], "voice_content": _TTS}, -102),
    ({"destinations": _DEST, "voice_content": {**_TTS, "time_limit_seconds": "10"}}, -103),
    ({"destinations": _DEST, "voice_content": {**_TTS, "ring_timeout_seconds": "1m"}}, -104),
    ({"destinations": _DEST, "voice_content": {"audio_file_url": "https://a.example/my clip.mp3"}},
     -107),
    ({"destinations": _DEST, "voice_content": {"audio_file_url": "www.example.org/a.mp3"}}, -111),
])
async def test_the_emulator_holds_the_adapter_to_the_seed(
        emulator: FortytwoVoiceEmulator, http: httpx.AsyncClient, raw: Any, code: int) -> None:
    content = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    response = await http.post(f"{emulator.base_url}/1/voice", content=content, headers={
        "Authorization": f"Token {TOKEN}", "Content-Type": "application/json"})
    assert response.status_code == 403
    assert response.json()["result_info"]["status_code"] == code


@pytest.mark.parametrize(("path", "code"), [
    ("/1/voice/status/short", -126), (f"/1/voice/status/{'0' * 36}", -125),
    ("/1/voice/message/12ab", -121), (f"/1/voice/message/{'1' * 20}", -120),
])
async def test_the_emulator_only_query_endpoints(emulator: FortytwoVoiceEmulator,
                                                 http: httpx.AsyncClient, path: str,
                                                 code: int) -> None:
    headers = {"Authorization": f"Token {TOKEN}"}
    response = await http.get(emulator.base_url + path, headers=headers)
    assert response.json()["result_info"]["status_code"] == code


AUTH_CODES = {-50}
# refusals of Fortytwo's own, which another provider would not share: they fail over
REFUSED_CODES = {-86, -92, -95, -96, -97, -101, -106, -107, -109, -110, -122, -123}
BUSY_CODES = {-105}
TRANSIENT_CODES = {-112}
SEED_CODES = [-80, -81, -82, -83, -84, -85, -86, -87, -88, -89, -90, -91, -92, -93, -95, -96,
              -97, -98, -99, -101, -102, -103, -104, -105, -106, -107, -108, -109, -110, -111,
              -112, -120, -121, -122, -123, -125, -126]


@pytest.mark.parametrize("code", SEED_CODES)
async def test_every_response_code_is_a_typed_error(make: Any, emulator: FortytwoVoiceEmulator,
                                                    code: int) -> None:
    emulator.answer_next_code(code)
    expected: type[ProviderError] = (
        AuthError if code in AUTH_CODES else RateLimitedError if code in BUSY_CODES
        else TransientError if code in TRANSIENT_CODES
        else ProviderRefusedError if code in REFUSED_CODES else RejectedError)
    with pytest.raises(ProviderError) as err:
        await make(retry_attempts=1).submit(batch())
    assert type(err.value) is expected
    assert (err.value.code, err.value.status) == (str(code), 403)
    assert str(err.value).startswith("ft: ")


@pytest.mark.parametrize(("code", "meaning"), [
    (-101, "funds or phone number coverage"), (-105, "try again later"),
    (-112, "VoIP system"), (-126, "not 36 characters long"), (-107, "'-' and '_'"),
])
async def test_errors_carry_the_documented_meaning(make: Any, emulator: FortytwoVoiceEmulator,
                                                   code: int, meaning: str) -> None:
    emulator.answer_next_code(code)
    with pytest.raises(ProviderError, match=meaning):
        await make(retry_attempts=1).submit(batch())


async def test_wrong_token_is_an_auth_error(make: Any, emulator: FortytwoVoiceEmulator) -> None:
    emulator.token = "another-token-0000"
    with pytest.raises(AuthError) as err:
        await make().submit(batch())
    assert (err.value.status, err.value.code) == (401, "-50")
    assert len(emulator.requests) == 1


async def test_wrong_path_names_the_options(make: Any) -> None:
    with pytest.raises(RejectedError, match="check base_url and path") as err:
        await make(path="/1/voicemail").submit(batch())
    assert err.value.status == 404


# -- retries ------------------------------------------------------------------------------------

async def test_429_raises_with_retry_after(make: Any, emulator: FortytwoVoiceEmulator,
                                           clock: ManualClock) -> None:
    # a rate limit is not retried in a loop: the dispatcher pauses the provider (dispatch.py)
    emulator.burst, emulator.window, emulator.retry_after = 1, 2.0, 2
    provider = make()
    await provider.submit(batch())
    with pytest.raises(RateLimitedError) as err:
        await provider.submit(batch())
    assert err.value.retry_after == 2.0 and clock.slept == []
    assert len(emulator.requests) == 2 and len(emulator.jobs) == 1


async def test_429_is_not_repeated(make: Any, emulator: FortytwoVoiceEmulator,
                                   clock: ManualClock) -> None:
    emulator.burst, emulator.window, emulator.retry_after = 0, 3600.0, 5
    with pytest.raises(RateLimitedError) as err:
        await make(retry_attempts=3).submit(batch())
    assert err.value.retry_after == 5.0
    assert clock.slept == [] and len(emulator.requests) == 1


async def test_5xx_is_retried_with_backoff(make: Any, emulator: FortytwoVoiceEmulator,
                                           clock: ManualClock) -> None:
    emulator.fail_next(503)
    emulator.fail_next(500)
    submission = await make(retry_base_delay=1.0).submit(batch())
    assert submission.provider_ref in emulator.jobs
    assert len(clock.slept) == 2
    assert 0.8 <= clock.slept[0] <= 1.2 and 1.6 <= clock.slept[1] <= 2.4


async def test_5xx_gives_up_as_transient(make: Any, emulator: FortytwoVoiceEmulator,
                                         clock: ManualClock) -> None:
    emulator.fail_next(500, count=5)
    with pytest.raises(TransientError, match="HTTP 500"):
        await make(retry_attempts=3).submit(batch())
    assert len(emulator.requests) == 3 and len(clock.slept) == 2 and not emulator.jobs


async def test_voip_code_is_retried(make: Any, emulator: FortytwoVoiceEmulator,
                                    clock: ManualClock) -> None:
    emulator.answer_next_code(-112)
    submission = await make().submit(batch())
    assert submission.provider_ref in emulator.jobs and len(clock.slept) == 1


async def test_server_too_busy_pauses_instead_of_retrying(make: Any,
                                                          emulator: FortytwoVoiceEmulator,
                                                          clock: ManualClock) -> None:
    # -105 "Server too busy" is a rate limit: raised at once, the dispatcher pauses the provider
    emulator.answer_next_code(-105)
    with pytest.raises(RateLimitedError):
        await make().submit(batch())
    assert clock.slept == [] and not emulator.jobs


async def test_a_post_that_times_out_is_not_repeated(make: Any,
                                                     emulator: FortytwoVoiceEmulator) -> None:
    emulator.slow_next(0.5)
    with pytest.raises(TransientError, match="timed out"):
        await make(timeout=0.05).submit(batch())
    assert len(emulator.requests) == 1


# -- answers read tolerantly (a tiny parser unit test with a mocked transport) -------------------

async def test_answers_are_read_tolerantly(clock: ManualClock) -> None:
    answers = iter([
        {"api_job_id": "j1", "results": {"35699000010": {"message_id": "m1"}},
         "result_info": {"status_code": 0}},
        {"api_job_id": "j2", "results": [{"number": "35699000011", "message_id": 7,
                                          "custom_id": "dlv-1"}]},
        {"api_job_id": "j3"},
        {"results": {}},
        {"api_job_id": "j5", "result_info": {"status_code": "-101", "description": "no funds"}},
    ])
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=next(answers)))
    async with httpx.AsyncClient(transport=transport) as client:
        provider = FortytwoVoiceProvider("ft", {"token": TOKEN}, ProviderContext(
            clock=clock, http=client))
        first = await provider.submit(batch("+35699000010", "+35699000011"))
        assert [(i.provider_message_id, i.state) for i in first.items] == [
            ("j1:m1", DeliveryState.SUBMITTED), (None, DeliveryState.REJECTED)]
        second = await provider.submit(batch("+35699000010", "+35699000011"))
        assert [i.state for i in second.items] == [DeliveryState.REJECTED,
                                                   DeliveryState.SUBMITTED]
        assert second.items[1].provider_message_id == "j2:7"
        third = await provider.submit(batch())
        assert third.provider_ref == "j3" and third.items[0].state is DeliveryState.SUBMITTED
        with pytest.raises(ProviderAnswerError):
            await provider.submit(batch())
        with pytest.raises(ProviderRefusedError, match="no funds"):
            await provider.submit(batch())


# -- check ---------------------------------------------------------------------------------------

async def test_check_verifies_the_token_without_a_call(make: Any,
                                                       emulator: FortytwoVoiceEmulator) -> None:
    info = await make().check()
    assert info.provider == "ft" and info.details["probe"] == "-83"
    assert info.details["endpoint"] == f"{emulator.base_url}/1/voice"
    assert emulator.requests[-1].body == {"destinations": "alertline-check"}
    assert emulator.jobs == {}
    emulator.token = "revoked-token-0000"
    with pytest.raises(AuthError):
        await make().check()
    emulator.fail_next(503, count=5)
    with pytest.raises(TransientError):
        await make(retry_attempts=2).check()


async def test_check_without_probe(make: Any, emulator: FortytwoVoiceEmulator) -> None:
    info = await make(check_probe=False, callback_base=None).check()
    assert info.details == {"endpoint": f"{emulator.base_url}/1/voice", "callback": False,
                            "probe": False}
    assert emulator.requests == []


# -- postbacks -------------------------------------------------------------------------------

SEED_POSTBACK: dict[str, Any] = {
    "api_job_id": "56021e4d-7x91-42e9-be9c-5de682ad2c2b", "client_job_id": "123455",
    "data": [{"type": "voice", "timestamp": 1457423752, "micro_timestamp": 1457423752000,
              "from": "35699000000", "job_type": "TTS", "callback_url": "http://example.com/callback",
              "tts_text": "Hello, This is a simple test message", "tts_voice": "MAN",
              "tts_lang": "en-GB", "message_id": "14571237521680000249", "client_message_id": "111",
              "to": "35699000001", "ring_date": 1457423756, "answer_date": False,
              "hang_date": 1457423766, "actual_duration": 0, "billed_duration": 0,
              "status": "UNDELIV", "error_code": 4017, "error_description": "USER_BUSY"}]}


def call(status: str, **fields: Any) -> dict[str, Any]:
    item = {**SEED_POSTBACK["data"][0], "status": status, **fields}
    return {**SEED_POSTBACK, "data": [{k: v for k, v in item.items() if v is not None}]}


def test_the_seed_postback(make: Any) -> None:
    [update] = make().parse_push(SEED_POSTBACK)
    assert update.state is DeliveryState.FAILED
    assert (update.provider_ref, update.provider_message_id, update.delivery_id, update.number,
            update.provider_status, update.reason) == (
        "56021e4d-7x91-42e9-be9c-5de682ad2c2b",
        "56021e4d-7x91-42e9-be9c-5de682ad2c2b:14571237521680000249", "111", "+35699000001",
        "UNDELIV", "USER_BUSY")
    assert update.at is not None and update.at.timestamp() == 1457423752
    assert update.details == {
        "api_job_id": "56021e4d-7x91-42e9-be9c-5de682ad2c2b", "client_job_id": "123455",
        "ring_at": "2016-03-08T07:55:56+00:00", "hang_at": "2016-03-08T07:56:06+00:00",
        "duration": 0, "billed_duration": 0, "error_code": 4017, "error_description": "USER_BUSY",
        "job_type": "TTS", "caller_id": "35699000000", "custom_id": "111"}


@pytest.mark.parametrize(("body", "state", "reason"), [
    (call("RINGING", answer_date=False, hang_date=False, error_code=None,
          error_description=None), DeliveryState.SUBMITTED, None),
    (call("ANSWERED", answer_date=1457423760, error_code=None, error_description=None),
     DeliveryState.DELIVERED, None),
    (call("DELIVRD", answer_date=1457423760, error_code=None, error_description=None),
     DeliveryState.DELIVERED, None),
    (call("delivered", error_code=None, error_description=None), DeliveryState.DELIVERED, None),
    (call("UNDELIV", error_code=4018, error_description="NO_ANSWER"), DeliveryState.FAILED,
     "NO_ANSWER"),
    (call("UNDELIV", error_code=None, error_description=None), DeliveryState.FAILED, "UNDELIV"),
    (call("REJECTD"), DeliveryState.FAILED, "USER_BUSY"),
    (call("EXPIRED", error_code=None, error_description=None), DeliveryState.EXPIRED, "EXPIRED"),
    (call("HANGUP", answer_date=1457423760, error_code=None, error_description=None),
     DeliveryState.DELIVERED, None),
    (call("NOPE", error_code=4021, error_description="CALL_REJECTED"), DeliveryState.FAILED,
     "CALL_REJECTED"),
    (call("PROGRESS", error_code=None, error_description=None), DeliveryState.SUBMITTED, None),
])
def test_postback_statuses(make: Any, body: dict[str, Any], state: DeliveryState,
                           reason: str | None) -> None:
    [update] = make().parse_push(body)
    assert (update.state, update.reason) == (state, reason)


def test_keypress_durations_and_answer_time(make: Any) -> None:
    body = call("DELIVRD", answer_date="1457423760", hang_date=1457423790, actual_duration="30",
                billed_duration=60, menu_response=3, error_code=None, error_description=None,
                micro_timestamp=1457423790123456)
    [update] = make().parse_push(body)
    assert update.details["keypress"] == "3"
    assert (update.details["duration"], update.details["billed_duration"]) == (30, 60)
    assert update.details["answer_at"] == "2016-03-08T07:56:00+00:00"
    assert update.at is not None and update.at.microsecond == 123456
    [other] = make(keypress_fields=["digit"]).parse_push(call("DELIVRD", digit="7"))
    assert other.details["keypress"] == "7"


def test_status_map_option_extends_the_vocabulary(make: Any) -> None:
    provider = make(status_map={"NOANSWER": "failed", "DELIVRD": "sent"})
    assert provider.parse_push(call("noanswer"))[0].state is DeliveryState.FAILED
    assert provider.parse_push(call("DELIVRD"))[0].state is DeliveryState.SENT


def test_postback_data_as_one_object_and_several_calls(make: Any) -> None:
    single = {**SEED_POSTBACK, "data": SEED_POSTBACK["data"][0]}
    assert len(make().parse_push(single)) == 1
    two = {**SEED_POSTBACK, "data": [SEED_POSTBACK["data"][0]] * 2}
    assert len(make().parse_push(two)) == 2


@pytest.mark.parametrize(("body", "field"), [
    ([], "body"),
    ("text", "body"),
    ({"data": []}, "api_job_id"),
    ({"api_job_id": "j", "data": "x"}, "data"),
    ({"api_job_id": "j"}, "data"),
    ({"api_job_id": "j", "data": ["x"]}, "data[0]"),
    ({"api_job_id": "j", "data": [{"status": "RINGING"}]}, "data[0].message_id"),
    ({"api_job_id": "j", "data": [{"message_id": "1"}, {"message_id": "2", "status": 5}]},
     "data[0].status"),
])
def test_malformed_postbacks_name_the_field(make: Any, body: Any, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        make().parse_push(body)
    assert err.value.field == field


# -- description, registry, secrets ------------------------------------------------------------

def test_capabilities_and_registry(make: Any) -> None:
    assert adapter_class("fortytwo_voice") is FortytwoVoiceProvider
    provider = make(max_destinations=1, tracking_deadline=900)
    caps = provider.capabilities
    assert (caps.status, caps.max_recipients, caps.tracking_deadline) == (
        StatusMode.PUSH, 1, 900.0)
    assert caps.channels == frozenset({Channel.VOICE})
    assert make().capabilities.max_recipients == 500
    for schema in (FortytwoVoiceProvider.options_schema,
                   FortytwoVoiceProvider.alert_options_schema):
        assert all(getattr(marker, "description", None) for marker in schema)
    assert FortytwoVoiceProvider.secret_options == frozenset({"token"})


async def test_the_token_never_reaches_logs_or_errors(
        make: Any, emulator: FortytwoVoiceEmulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[Exception] = []
    provider = make()
    submission = await provider.submit(batch())
    emulator.fail_next(503)
    await provider.submit(batch())
    emulator.answer_next_code(-101)
    for job in (batch(), batch(sender="x")):
        try:
            await provider.submit(job)
        except (ProviderError, ValidationError) as err:
            errors.append(err)
    emulator.slow_next(0.3)
    try:
        await make(timeout=0.05).submit(batch())
    except TransientError as err:
        errors.append(err)
    emulator.token = "other-token-000000"
    try:
        await provider.check()
    except AuthError as err:
        errors.append(err)
    assert len(errors) == 4
    assert caplog.records
    everything = caplog.text + " ".join(f"{e} {e!r}" for e in errors) + repr(submission)
    assert TOKEN not in everything
    assert json.dumps(submission.data).find(TOKEN) == -1


# -- postbacks reach only the call of their own job (#12.10) -------------------------------------

async def test_a_postback_for_another_job_is_refused(tmp_path: Path,
                                                     http: httpx.AsyncClient) -> None:
    """A postback naming a message of job A under job B's id changes nothing, at the engine."""
    harness = EngineHarness(tmp_path / "alertline.db")
    async with FortytwoVoiceEmulator(TOKEN, now=lambda: harness.clock.now().timestamp()) as emu:
        options = {"type": "fortytwo_voice", "token": TOKEN, "base_url": emu.base_url,
                   "callback_url": "http://127.0.0.1:9/postbacks/ft/unused-token"}
        provider = FortytwoVoiceProvider("ft", {k: v for k, v in options.items()
                                                if k != "type"},
                                         ProviderContext(clock=harness.clock, http=http))
        engine = await harness.start(make_config(providers={"ft": options}),
                                     providers={"ft": provider})
        try:
            first = await harness.send(engine, to=["+35699000010"], channel="voice",
                                       provider="ft")
            second = await harness.send(engine, to=["+35699000011"], channel="voice",
                                        provider="ft")
            job_a, job_b = emu.jobs.values()

            def postback(job_id: str, message_id: str, status: str) -> Any:
                return provider.parse_push({"api_job_id": job_id, "data": [
                    {"type": "voice", "message_id": message_id, "status": status,
                     "answer_date": 1457423760 if status == "DELIVRD" else False}]})

            forged = postback(job_b.api_job_id, job_a.calls[0].message_id, "DELIVRD")
            assert await engine.apply_push("ft", forged) == 0
            report = await engine.report(first.alert_id)
            assert report.deliveries[0].state is DeliveryState.SUBMITTED
            assert (await engine.report(second.alert_id)).deliveries[0].state is (
                DeliveryState.SUBMITTED)
            genuine = postback(job_a.api_job_id, job_a.calls[0].message_id, "DELIVRD")
            assert await engine.apply_push("ft", genuine) == 1
            report = await engine.report(first.alert_id)
            assert report.deliveries[0].state is DeliveryState.DELIVERED
        finally:
            await harness.close()
