"""Tests of the Retarus Voice SOAP v3 adapter against its emulator over real HTTP."""

from __future__ import annotations

import base64
import dataclasses
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import voluptuous as vol
from aiohttp import web
from lxml import etree

from alertline.clock import ManualClock
from alertline.errors import (
    AuthError,
    DuplicateError,
    ProviderAnswerError,
    ProviderError,
    RateLimitedError,
    RejectedError,
    TransientError,
    ValidationError,
)
from alertline.model import Channel, DeliveryState
from alertline.phone import NumberFormat
from alertline.providers import adapter_class
from alertline.providers.base import (
    Batch,
    BatchItem,
    ProviderContext,
    Submission,
    SubmittedItem,
)
from alertline.providers.retarus.voice import RetarusVoiceProvider
from alertline.providers.retarus.voice_faults import fault_error
from alertline.providers.retarus.voice_wire import (
    RecipientReport,
    VersionInfo,
    match_reports,
    parse_job_id,
    parse_job_ids,
    parse_timestamp,
    recipient_state,
)
from tests.emulators.retarus_voice import NS, RetarusVoiceEmulator

USER, PASSWORD = "acme-voice-login", "Voice-s3cret-pw"
CALLER = "+4930901820"


@pytest.fixture
async def emu(clock: ManualClock) -> AsyncIterator[RetarusVoiceEmulator]:
    async with RetarusVoiceEmulator(USER, PASSWORD, clock=clock) as emulator:
        yield emulator


def make(emu: RetarusVoiceEmulator, clock: ManualClock, http: httpx.AsyncClient | None = None,
         **options: Any) -> RetarusVoiceProvider:
    opts = {"username": USER, "password": PASSWORD, "url": emu.base_url, "caller_id": CALLER,
            **options}
    return RetarusVoiceProvider("voice", opts, ProviderContext(clock=clock, http=http))


@pytest.fixture
async def provider(emu: RetarusVoiceEmulator,
                   clock: ManualClock) -> AsyncIterator[RetarusVoiceProvider]:
    adapter = make(emu, clock)
    yield adapter
    await adapter.aclose()


def item(number: str, template: str = "Water leak, ${name}!", index: int = 0,
         **personalization: str) -> BatchItem:
    text = template.replace("${name}", personalization.get("name", "${name}"))
    return BatchItem(delivery_id=f"d{index}-{number}", alert_id="alert-1", number=number,
                     text=text, template=template, personalization=personalization)


def batch(*items: BatchItem, **fields: Any) -> Batch:
    return Batch(channel=fields.pop("channel", Channel.VOICE), items=items, **fields)


def sent(emu: RetarusVoiceEmulator) -> dict[str, Any]:
    """The fields of the last sendJob the emulator received."""
    return next(r.fields for r in reversed(emu.requests) if r.operation == "sendJob")


def decoded(content: dict[str, Any], charset: str = "utf-8") -> str:
    return base64.b64decode(content["content"]).decode(charset)


# -- configuration -----------------------------------------------------------------------------

def test_registry_and_capabilities(emu: RetarusVoiceEmulator, clock: ManualClock) -> None:
    assert adapter_class("retarus_voice") is RetarusVoiceProvider
    adapter = make(emu, clock, max_recipients=7, poll_interval=12, tracking_deadline=3600,
                   number_format="digits", duplicate_detection=True)
    caps = adapter.capabilities
    assert caps.channels == frozenset({Channel.VOICE})
    assert (caps.max_recipients, caps.poll_interval, caps.tracking_deadline) == (7, 12.0, 3600.0)
    assert caps.personalization and caps.scheduling and caps.idempotent_submit
    assert caps.number_format is NumberFormat.DIGITS
    assert not make(emu, clock).capabilities.idempotent_submit


def test_every_option_is_described() -> None:
    for schema in (RetarusVoiceProvider.options_schema,
                   RetarusVoiceProvider.alert_options_schema):
        for marker in schema:
            assert marker.description, marker


def test_option_validation() -> None:
    defaults = RetarusVoiceProvider.validate_options({"username": "u", "password": "p"})
    assert defaults["url"] == "https://voice4a.retarus.com/soap/v3"
    assert (defaults["locale"], defaults["charset"], defaults["audio_content_type"]) == (
        "en_US", "UTF-8", "audio/x-wav")
    for bad in ({"charset": "no-such-charset"}, {"audio_content_type": "audio/mpeg"},
                {"number_format": "national"}, {"max_recipients": 0},
                {"auth_fault_pattern": "(unclosed"}):
        with pytest.raises(vol.Invalid):
            RetarusVoiceProvider.validate_options({"username": "u", "password": "p", **bad})
    bad_alerts: list[dict[str, Any]] = [
        {"contents": [{"text": "a", "url": "http://x/a.wav"}]},
        {"contents": [{"wav": "not base64!"}]}, {"contents": []},
        {"job_period": "a b"}, {"blackout_periods": ["1/2/3"]},
        {"blackout_periods": ["2026-01-01T13:00:00Z"]}]
    for bad_alert in bad_alerts:
        with pytest.raises(vol.Invalid):
            RetarusVoiceProvider.validate_alert_options(bad_alert)


# -- sendJob -----------------------------------------------------------------------------------

async def test_submit_personalised_text_job(provider: RetarusVoiceProvider,
                                            emu: RetarusVoiceEmulator) -> None:
    submission = await provider.submit(batch(item("+491701234560", name="Max"),
                                             item("+491701234561", index=1, name="Erika")))
    fields = sent(emu)
    assert list(fields)[:2] == ["username", "password"]
    assert fields["contents"] == [{"contentType": "text/plain; charset=UTF-8",
                                   "content": fields["contents"][0]["content"]}]
    assert decoded(fields["contents"][0]) == "Water leak, ${name}!"
    assert [r["recipientId"] for r in fields["recipients"]] == ["+491701234560", "+491701234561"]
    assert fields["recipients"][1]["personalization"] == {
        "entries": [{"key": "name", "value": "Erika"}]}
    assert (fields["callerId"], fields["locale"], fields["reference"]) == (CALLER, "en_US",
                                                                         "alert-1")
    assert "options" not in fields and "jobPeriod" not in fields
    assert submission.provider_ref in emu.jobs
    assert [i.state for i in submission.items] == [DeliveryState.SUBMITTED] * 2
    assert submission.data["recipient_ids"] == ["+491701234560", "+491701234561"]


async def test_submit_every_job_field(emu: RetarusVoiceEmulator, clock: ManualClock) -> None:
    adapter = make(emu, clock, cost_center="Ops", job_options={"custom": "1"},
                   duplicate_detection=True, charset="ISO-8859-15", locale="fr_FR")
    wav = base64.b64encode(b"RIFF....WAVEfmt ").decode()
    options = {
        "caller_id": "+4989111", "locale": "de-DE", "job_period":
            "2026-01-01T13:00:00Z/P1DT2H", "blackout_periods": ["12:00Z/13:00Z"],
        "cost_center": "Facility", "reference": "JobReference", "duplicate_detection": False,
        "job_options": {"custom": "2"},
        "contents": [{"message": True}, {"text": "Preis 5 €"}, {"wav": wav},
                     {"url": "http://media.example/leak.wav"},
                     {"url": "http://media.example/leak.txt",
                      "content_type": "text/plain; charset=UTF-8"},
                     {"wav": wav, "content_type": "audio/wave"}],
        "recipients": {"+491701234560": {
            "caller_id": "+4930222", "blackout_periods": ["00:00/01:00", "02:00/03:00"],
            "personalization": {"floor": "basement"}}},
    }
    await adapter.submit(batch(item("+491701234560", name="Max"), item("+491701234561"),
                               sender="+4930999", locale="en_GB",
                               blackout_periods=("22:00Z/07:00Z",), options=options))
    fields = sent(emu)
    assert (fields["callerId"], fields["locale"], fields["jobPeriod"]) == (
        "+4989111", "de_DE", "2026-01-01T13:00:00Z/P1DT2H")
    assert fields["blackoutPeriods"] == ["22:00Z/07:00Z", "12:00Z/13:00Z"]
    assert (fields["costCenter"], fields["reference"]) == ("Facility", "JobReference")
    assert fields["options"]["entries"] == [{"key": "custom", "value": "2"},
                                            {"key": "duplicateDetection", "value": "false"}]
    types = [c.get("contentType") for c in fields["contents"]]
    assert types == ["text/plain; charset=ISO-8859-15"] * 2 + [
        "audio/x-wav", "audio/x-wav", "text/plain; charset=UTF-8", "audio/wave"]
    assert decoded(fields["contents"][1], "iso-8859-15") == "Preis 5 €"
    assert base64.b64decode(fields["contents"][2]["content"]) == b"RIFF....WAVEfmt "
    assert fields["contents"][3] == {"contentType": "audio/x-wav",
                                     "contentUrl": "http://media.example/leak.wav"}
    first, second = fields["recipients"]
    assert first == {"recipientId": "+491701234560", "callerId": "+4930222",
                     "blackoutPeriods": ["00:00/01:00", "02:00/03:00"],
                     "personalization": {"entries": [{"key": "name", "value": "Max"},
                                                     {"key": "floor", "value": "basement"}]}}
    assert second == {"recipientId": "+491701234561"}
    await adapter.aclose()


async def test_provider_defaults_for_job_fields(emu: RetarusVoiceEmulator,
                                                clock: ManualClock) -> None:
    adapter = make(emu, clock, cost_center="Ops", job_options={"custom": "1"},
                   duplicate_detection=True, audio_content_type="audio/vnd.wave")
    await adapter.submit(batch(item("+491701234560"), sender="+4930999",
                               audio_url="https://media.example/a.wav"))
    fields = sent(emu)
    assert fields["callerId"] == "+4930999"
    assert fields["costCenter"] == "Ops"
    assert fields["options"]["entries"] == [{"key": "custom", "value": "1"},
                                            {"key": "duplicateDetection", "value": "true"}]
    assert fields["contents"] == [{"contentType": "audio/vnd.wave",
                                   "contentUrl": "https://media.example/a.wav"}]
    await adapter.aclose()


async def test_job_period_from_alert_times(provider: RetarusVoiceProvider,
                                           emu: RetarusVoiceEmulator, clock: ManualClock) -> None:
    start, end = clock.now() + timedelta(hours=1), clock.now() + timedelta(hours=3)
    await provider.submit(batch(item("+491701234560"), not_before=start, expires=end))
    assert sent(emu)["jobPeriod"] == "2026-01-01T13:00:00Z/2026-01-01T15:00:00Z"
    await provider.submit(batch(item("+491701234560"), expires=end))
    assert sent(emu)["jobPeriod"] == "2026-01-01T12:00:00Z/2026-01-01T15:00:00Z"
    submission = await provider.submit(batch(item("+491701234560"), not_before=start))
    assert sent(emu)["jobPeriod"] == "2026-01-01T13:00:00Z/2026-01-02T13:00:00Z"  # bounded
    updates = await provider.poll(submission)
    assert (updates[0].provider_status, updates[0].state) == ("SCHEDULED",
                                                              DeliveryState.SUBMITTED)
    emu.advance(3600 + 25)
    assert (await provider.poll(submission))[0].state is DeliveryState.DELIVERED


async def test_digits_number_format(emu: RetarusVoiceEmulator, clock: ManualClock) -> None:
    adapter = make(emu, clock, number_format="digits")
    submission = await adapter.submit(batch(item("+491701234568")))
    assert sent(emu)["recipients"] == [{"recipientId": "491701234568"}]
    emu.advance(65)
    [update] = await adapter.poll(submission)
    assert (update.state, update.reason, update.number) == (DeliveryState.FAILED, "Busy",
                                                            "+491701234568")
    await adapter.aclose()


@pytest.mark.parametrize(("make_batch", "options", "field"), [
    (lambda: batch(item("+491701234560")), {"caller_id": None}, "sender"),
    (lambda: batch(item("+491701234560"), item("+491701234561", "Other text", 1)), {},
     "message"),
    (lambda: batch(item("+491701234560", "Preis 5 €")), {"charset": "US-ASCII"}, "message"),
    (lambda: batch(item("+491701234560"), channel=Channel.SMS), {}, "channel"),
    (batch, {}, "to"),
    (lambda: batch(item("+491701234560"), item("+491701234561", index=1)),
     {"max_recipients": 1}, "to"),
    (lambda: batch(item("+491701234560"), options={"contents": [{"wav": "%%%"}]}), {},
     "options.contents"),
])
async def test_unusable_input_is_rejected_before_sending(
        emu: RetarusVoiceEmulator, clock: ManualClock, make_batch: Any, options: dict[str, Any],
        field: str) -> None:
    adapter = make(emu, clock, **options)
    with pytest.raises(ValidationError) as err:
        await adapter.submit(make_batch())
    assert err.value.field == field
    assert "sendJob" not in emu.operations()
    await adapter.aclose()


# -- getJobReport ------------------------------------------------------------------------------

async def test_status_progresses_to_final_states(provider: RetarusVoiceProvider,
                                                 emu: RetarusVoiceEmulator) -> None:
    numbers = ["+491701234560", "+491701234566", "+491701234567", "+491701234568",
               "+491701234569"]
    submission = await provider.submit(
        batch(*(item(n, index=i) for i, n in enumerate(numbers))))

    async def statuses() -> list[tuple[str | None, DeliveryState]]:
        return [(u.provider_status, u.state) for u in await provider.poll(submission)]

    open_ = DeliveryState.SUBMITTED
    assert await statuses() == [("PENDING", open_)] * 5
    emu.advance(10)
    assert await statuses() == [("TRANSMITTING", open_)] * 5
    emu.advance(10)
    updates = await provider.poll(submission)
    # a failed attempt that Retarus retries (state PROCESSING) is not final
    assert [(u.provider_status, u.state) for u in updates] == [
        ("SUCCESSFUL", DeliveryState.DELIVERED), ("FAILED", open_), ("FAILED", open_),
        ("FAILED", open_), ("TRANSMITTING", open_)]
    ok, retrying = updates[0], updates[1]
    assert ok.reason is None and ok.provider_ref == submission.provider_ref
    assert ok.details["callDuration"] == 20.0 and ok.details["tryCount"] == 1
    assert ok.details["statusText"] == "Call completed, message played"
    assert ok.at == datetime(2026, 1, 1, 12, 0, 20, tzinfo=UTC)
    assert ok.details["job_status"] == "PROCESSING"
    assert retrying.reason is None
    assert (retrying.details["state"], retrying.details["tryCount"]) == ("PROCESSING", 1)
    emu.advance(10)
    assert (await statuses())[1] == ("TRANSMITTING", open_)
    emu.advance(10)
    updates = await provider.poll(submission)
    assert [(u.provider_status, u.state) for u in updates][1:4] == [
        ("SUCCESSFUL", DeliveryState.DELIVERED), ("FAILED", open_), ("FAILED", open_)]
    assert updates[1].details["tryCount"] == 2
    emu.advance(20)
    updates = await provider.poll(submission)
    assert [(u.provider_status, u.state) for u in updates][2:] == [
        ("FAILED", DeliveryState.FAILED), ("FAILED", DeliveryState.FAILED),
        ("TRANSMITTING", open_)]
    no_answer = updates[2]
    assert (no_answer.reason, no_answer.details["tryCount"]) == ("No answer", 3)


@pytest.mark.parametrize(("status", "state", "expected"), [
    ("PENDING", None, DeliveryState.SUBMITTED), ("SCHEDULED", None, DeliveryState.SUBMITTED),
    ("TRANSMITTING", None, DeliveryState.SUBMITTED),
    ("SUCCESSFUL", None, DeliveryState.DELIVERED), ("FAILED", None, DeliveryState.FAILED),
    ("FAILED", "PROCESSING", DeliveryState.SUBMITTED),  # Retarus retries: tryCount tells
    ("SUCCESSFUL", "PROCESSING", DeliveryState.SUBMITTED),  # only FINISHED is final
    ("CANCELLED", "FINISHED", DeliveryState.FAILED),  # not documented: final by its state
    ("RINGING", "PROCESSING", DeliveryState.SUBMITTED),
])
async def test_every_recipient_status(provider: RetarusVoiceProvider, emu: RetarusVoiceEmulator,
                                      status: str, state: str | None,
                                      expected: DeliveryState) -> None:
    submission = await provider.submit(batch(item("+491701234560")))
    emu.set_status(submission.provider_ref or "", "+491701234560", status, f"text {status}",
                   state)
    [update] = await provider.poll(submission)
    assert (update.provider_status, update.state) == (status, expected)
    assert update.details["statusText"] == f"text {status}"
    assert update.reason == (f"text {status}" if expected is DeliveryState.FAILED else None)


def test_status_table_and_unknown_values() -> None:
    assert recipient_state("successful", "FINISHED") is DeliveryState.DELIVERED
    assert recipient_state("FAILED", "processing") is DeliveryState.SUBMITTED
    assert recipient_state("RINGING", "PROCESSING") is DeliveryState.SUBMITTED
    assert recipient_state("RINGING", "FINISHED") is DeliveryState.FAILED
    assert recipient_state("TRANSMITTING", "FINISHED") is DeliveryState.FAILED
    assert recipient_state(None) is DeliveryState.SUBMITTED
    # no state (the seed makes it required): final only once the whole job is
    assert recipient_state("FAILED") is DeliveryState.SUBMITTED
    assert recipient_state("FAILED", job_finished=True) is DeliveryState.FAILED
    assert recipient_state("SUCCESSFUL", job_finished=True) is DeliveryState.DELIVERED


async def test_job_report_and_job_states(provider: RetarusVoiceProvider,
                                         emu: RetarusVoiceEmulator) -> None:
    mixed = await provider.submit(batch(item("+491701234560"), item("+491701234568", index=1),
                                        options={"reference": "R-1", "cost_center": "C-1"}))
    good = await provider.submit(batch(item("+491701234561")))
    bad = await provider.submit(batch(item("+491701234567")))
    report = await provider.job_report(mixed.provider_ref or "")
    assert (report.status, report.state, report.finished) == ("PROCESSING", "PROCESSING", False)
    assert (report.reference, report.cost_center) == ("R-1", "C-1")
    emu.advance(60)
    states = [await provider.job_report(s.provider_ref or "") for s in (mixed, good, bad)]
    assert [(r.status, r.state) for r in states] == [
        ("FINISHED", "PARTIALLY SUCCESSFUL"), ("FINISHED", "SUCCESSFUL"),
        ("FINISHED", "FAILED")]
    assert states[0].finished and states[0].created
    with pytest.raises(RejectedError) as err:
        await provider.job_report("no-such-job")
    assert err.value.code == "JOB_NOT_FOUND"


async def test_unknown_answer_elements_are_tolerated(provider: RetarusVoiceProvider,
                                                     emu: RetarusVoiceEmulator) -> None:
    emu.extra_report_fields = {"networkCode": "262-01", "hangupCause": "NORMAL_CLEARING"}
    submission = await provider.submit(batch(item("+491701234560")))
    emu.advance(20)
    [update] = await provider.poll(submission)
    assert update.state is DeliveryState.DELIVERED


async def test_poll_reports_only_what_the_job_knows(provider: RetarusVoiceProvider) -> None:
    real = await provider.submit(batch(item("+491701234560")))
    stranger = SubmittedItem(delivery_id="d-x", number="+491709999999")
    mixed = dataclasses.replace(real, items=(stranger, *real.items), data={})
    assert [u.delivery_id for u in await provider.poll(mixed)] == [real.items[0].delivery_id]
    empty = Submission(provider_ref=None, items=(), submitted_at=datetime.now(UTC))
    assert await provider.poll(empty) == []


# -- getAvailableReports, getVersionInfo ---------------------------------------------------------

async def test_available_reports_filters(provider: RetarusVoiceProvider,
                                         emu: RetarusVoiceEmulator, clock: ManualClock) -> None:
    first = (await provider.submit(batch(item("+491701234560")))).provider_ref
    emu.advance(3600)
    second = (await provider.submit(batch(item("+491701234569")))).provider_ref
    emu.advance(60)
    third = (await provider.submit(batch(item("+491701234561")))).provider_ref
    assert await provider.available_reports() == [first, second, third]
    assert await provider.available_reports(open=False) == [first]
    assert await provider.available_reports(open=True) == [second, third]
    assert await provider.available_reports(offset=1, limit=1) == [second]
    since = emu.now() - timedelta(minutes=30)
    assert await provider.available_reports(from_ts=since) == [second, third]
    assert await provider.available_reports(from_ts="2026-01-01T12:00+00:00",
                                            to_ts=since.isoformat()) == [first]
    request = emu.requests[-1].fields
    assert (request["fromTs"], request["toTs"]) == ("2026-01-01T12:00+00:00", since.isoformat())
    with pytest.raises(RejectedError) as err:
        await provider.available_reports(from_ts=since - timedelta(days=31), to_ts=since)
    assert err.value.code == "INVALID_TIMESTAMP"
    with pytest.raises(ValidationError):
        await provider.available_reports(offset=-1)
    with pytest.raises(ValidationError):
        await provider.available_reports(limit=0)


async def test_check_reports_version_and_login(provider: RetarusVoiceProvider,
                                               emu: RetarusVoiceEmulator,
                                               clock: ManualClock) -> None:
    info = await provider.check()
    assert info.version == "2015.6 (build 00008, 2014-09-09 11:37:36 +0200)"
    assert info.details["wsdl"] == "live" and info.details["credentials_checked"]
    assert emu.operations() == ["getVersionInfo", "getAvailableReports"]
    wrong = make(emu, clock, password="wrong-password")
    with pytest.raises(AuthError) as err:
        await wrong.check()
    assert err.value.code == "AUTHENTICATION_FAILED"
    lenient = make(emu, clock, password="wrong-password", check_credentials=False)
    assert (await lenient.check()).details["credentials_checked"] is False
    for adapter in (wrong, lenient):
        await adapter.aclose()


async def test_cancel_and_push_are_not_supported(provider: RetarusVoiceProvider) -> None:
    empty = Submission(provider_ref="x", items=(), submitted_at=datetime.now(UTC))
    assert await provider.cancel(empty) is False
    with pytest.raises(NotImplementedError):
        provider.parse_push({})


# -- faults and HTTP errors ---------------------------------------------------------------------

@pytest.mark.parametrize(("options", "number", "error", "code"), [
    ({"contents": [{"text": "x", "content_type": "video/mp4"}]}, "+491701234560",
     RejectedError, "INVALID_CONTENT"),
    ({"blackout_periods": ["10:00Z/P1D"]}, "+491701234560", RejectedError, "INVALID_PERIOD"),
    ({"locale": "german"}, "+491701234560", RejectedError, "VALIDATION_FAILED"),
])
async def test_validation_faults(provider: RetarusVoiceProvider, clock: ManualClock,
                                 options: dict[str, Any], number: str,
                                 error: type[ProviderError], code: str) -> None:
    with pytest.raises(error) as err:
        await provider.submit(batch(item(number), options=options))
    assert type(err.value) is error and err.value.code == code
    assert "SOAP fault Client" in str(err.value)
    assert clock.slept == []


async def test_auth_fault_and_fault_patterns(emu: RetarusVoiceEmulator,
                                             clock: ManualClock) -> None:
    wrong = make(emu, clock, password="wrong-password")
    with pytest.raises(AuthError):
        await wrong.submit(batch(item("+491701234560")))
    relabelled = make(emu, clock, password="wrong-password", auth_fault_pattern="(?i)nomatch")
    with pytest.raises(RejectedError) as err:
        await relabelled.submit(batch(item("+491701234560")))
    assert type(err.value) is RejectedError
    for adapter in (wrong, relabelled):
        await adapter.aclose()


async def test_duplicate_detection(emu: RetarusVoiceEmulator, clock: ManualClock) -> None:
    adapter = make(emu, clock, duplicate_detection=True)
    job = batch(item("+491701234560"))
    await adapter.submit(job)
    with pytest.raises(DuplicateError) as err:
        await adapter.submit(job)
    assert err.value.code == "DUPLICATE_JOB"
    other = make(emu, clock, duplicate_detection=True, duplicate_fault_pattern="")
    with pytest.raises(RejectedError) as plain:
        await other.submit(job)
    assert type(plain.value) is RejectedError
    emu.advance(601)
    assert (await adapter.submit(job)).provider_ref
    for each in (adapter, other):
        await each.aclose()


async def test_server_fault_is_retried(provider: RetarusVoiceProvider, emu: RetarusVoiceEmulator,
                                       clock: ManualClock) -> None:
    emu.fault_next("Server", "Database unavailable", times=2)
    assert (await provider.submit(batch(item("+491701234560")))).provider_ref
    assert len(clock.slept) == 2
    emu.fault_next("Server", "Database unavailable", times=4)
    with pytest.raises(TransientError) as err:
        await provider.submit(batch(item("+491701234560")))
    assert "Database unavailable" in str(err.value) and len(clock.slept) == 5
    assert err.value.code == "INTERNAL_ERROR"


async def test_429_raised_at_once_with_retry_after(provider: RetarusVoiceProvider,
                                                   emu: RetarusVoiceEmulator,
                                                   clock: ManualClock) -> None:
    # no tight retry loop: the dispatcher pauses the provider for Retry-After (dispatch.py)
    emu.fail_next(429, times=1, retry_after=7, message="Too many requests")
    with pytest.raises(RateLimitedError) as err:
        await provider.submit(batch(item("+491701234560")))
    assert err.value.retry_after == 7.0 and clock.slept == []
    assert (await provider.submit(batch(item("+491701234560")))).provider_ref


@pytest.mark.parametrize(("status", "error"), [(429, RateLimitedError), (503, TransientError)])
async def test_rate_limits_and_outages_stay_so_with_a_fault_body(
        provider: RetarusVoiceProvider, emu: RetarusVoiceEmulator, clock: ManualClock,
        status: int, error: type[ProviderError]) -> None:
    """A 429/503 that carries a soap:Client fault is still "wait", never a refusal."""
    await provider.check()
    emu.fail_next(status, times=4, retry_after=5, message="Too many requests", fault="Client")
    with pytest.raises(error) as err:
        await provider.submit(batch(item("+491701234560")))
    assert type(err.value) is error and err.value.status == status
    # no tight retry loop (a 429 is not repeated, a 503 once), then handed to the engine
    assert len(clock.slept) == (0 if status == 429 else 1) and not emu.jobs


async def test_burst_rate_limit(emu: RetarusVoiceEmulator, clock: ManualClock) -> None:
    emu.burst = 2
    adapter = make(emu, clock)
    await adapter.check()
    with pytest.raises(RateLimitedError) as err:  # the third call in the 10-second window
        await adapter.submit(batch(item("+491701234560")))
    assert err.value.retry_after == 10.0 and clock.slept == []
    assert emu.operations() == ["getVersionInfo", "getAvailableReports"]
    await adapter.aclose()


async def test_5xx_backoff_then_give_up(provider: RetarusVoiceProvider,
                                        emu: RetarusVoiceEmulator, clock: ManualClock) -> None:
    emu.fail_next(502, times=3)
    assert await provider.available_reports() == []
    assert len(clock.slept) == 3
    for wait, base in zip(clock.slept, (0.5, 1.0, 2.0), strict=True):
        assert base * 0.8 <= wait <= base * 1.2
    emu.fail_next(503, times=2)  # one quick retry, then the dispatcher's pause
    with pytest.raises(TransientError) as err:
        await provider.available_reports()
    assert err.value.status == 503 and len(clock.slept) == 4
    emu.fail_next(502, times=4, message="Bad gateway")
    with pytest.raises(TransientError) as err:
        await provider.available_reports()
    assert err.value.status == 502 and "Bad gateway" in str(err.value)


@pytest.mark.parametrize(("status", "error"), [(401, AuthError), (403, AuthError),
                                               (400, RejectedError), (404, RejectedError),
                                               (409, DuplicateError)])
async def test_http_errors_without_fault(provider: RetarusVoiceProvider,
                                         emu: RetarusVoiceEmulator, clock: ManualClock,
                                         status: int, error: type[ProviderError]) -> None:
    emu.fail_next(status, message="<html><body>Nope</body></html>")
    with pytest.raises(error) as err:
        await provider.check()
    assert err.value.status == status and "Nope" in str(err.value)
    assert clock.slept == []


async def test_timeouts(emu: RetarusVoiceEmulator, clock: ManualClock) -> None:
    adapter = make(emu, clock, timeout=0.2, retry_attempts=2)
    await adapter.check()  # WSDL loaded
    emu.delay_next(0.6)
    with pytest.raises(TransientError, match="timed out"):
        await adapter.submit(batch(item("+491701234560")))
    assert clock.slept == []  # sendJob may have been taken: never repeated after a read timeout
    emu.delay_next(0.6)
    assert await adapter.available_reports(limit=5) is not None
    assert len(clock.slept) == 1
    await adapter.aclose()


async def test_unreadable_and_oversized_answers(emu: RetarusVoiceEmulator,
                                                clock: ManualClock) -> None:
    adapter = make(emu, clock, max_response_bytes=2048, wsdl_url="bundled",
                   wsdl_namespace=NS)
    emu.fail_next(200, message="this is not SOAP")
    with pytest.raises(ProviderAnswerError):
        await adapter.check()
    emu.fail_next(503, message="x" * 5000)
    with pytest.raises(ProviderAnswerError, match="larger than 2048"):
        await adapter.check()
    assert clock.slept == []
    await adapter.aclose()


async def test_connection_refused_is_transient(clock: ManualClock) -> None:
    async with RetarusVoiceEmulator(USER, PASSWORD, clock=clock) as emu:
        url = emu.base_url
    adapter = RetarusVoiceProvider("voice", {"username": USER, "password": PASSWORD, "url": url,
                                             "wsdl_url": "bundled", "wsdl_namespace": NS,
                                             "retry_attempts": 2},
                                   ProviderContext(clock=clock))
    with pytest.raises(TransientError, match="cannot connect"):
        await adapter.check()
    assert len(clock.slept) == 1
    await adapter.aclose()


# -- WSDL and HTTP client ----------------------------------------------------------------------

async def test_live_wsdl_is_loaded_off_the_event_loop(provider: RetarusVoiceProvider,
                                                      emu: RetarusVoiceEmulator) -> None:
    """The emulator runs on this loop: a WSDL fetch made inline would block it and fail."""
    submission = await provider.submit(batch(item("+491701234560")))
    await provider.check()
    assert emu.wsdl_requests == 1
    assert submission.data["wsdl"] == "live"


SERVICE_NS = "urn:example:retarus:voice:v3"  # a namespace the bundled copy does not carry


async def test_wsdl_falls_back_to_the_bundled_copy_in_the_configured_namespace(
        clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with RetarusVoiceEmulator(USER, PASSWORD, clock=clock, namespace=SERVICE_NS,
                                    report_operation="getJobReports") as emu:
        emu.wsdl_status = 503
        adapter = make(emu, clock, wsdl_namespace=SERVICE_NS, report_operation="getJobReports")
        first = await adapter.submit(batch(item("+491701234560")))
        await adapter.poll(first)
        assert first.data["wsdl"] == "bundled"
        warnings = [r for r in caplog.records if "bundled copy" in r.getMessage()]
        assert len(warnings) == 1 and emu.wsdl_requests == 1
        assert SERVICE_NS in warnings[0].getMessage()
        bundled = make(emu, clock, wsdl_url="bundled", wsdl_namespace=SERVICE_NS,
                       report_operation="getJobReports")
        info = await bundled.check()
        assert (info.details["wsdl"], info.details["namespace"]) == ("bundled", SERVICE_NS)
        assert emu.wsdl_requests == 1
        assert emu.operations() == ["sendJob", "getJobReports", "getVersionInfo",
                                    "getAvailableReports"]
        for each in (adapter, bundled):
            await each.aclose()


async def test_no_invented_namespace_when_the_wsdl_cannot_be_fetched(
        clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    """Without wsdl_namespace nothing is sent until the live WSDL loads: a transient error."""
    caplog.set_level(logging.WARNING)
    async with RetarusVoiceEmulator(USER, PASSWORD, clock=clock, namespace=SERVICE_NS) as emu:
        emu.wsdl_status = 503
        adapter = make(emu, clock)
        for _attempt in range(3):
            with pytest.raises(TransientError, match="WSDL cannot be loaded: HTTP 503"):
                await adapter.submit(batch(item("+491701234560")))
        assert emu.operations() == [] and emu.wsdl_requests == 3
        warnings = [r for r in caplog.records if "no wsdl_namespace" in r.getMessage()]
        assert len(warnings) == 1  # one per outage, not one per call
        emu.wsdl_status = 200
        submission = await adapter.submit(batch(item("+491701234560")))
        assert submission.data["wsdl"] == "live" and emu.operations() == ["sendJob"]
        await adapter.aclose()
    with pytest.raises(vol.Invalid) as err:
        RetarusVoiceProvider.validate_options({"username": "u", "password": "p",
                                               "wsdl_url": "bundled"})
    assert err.value.path == ["wsdl_namespace"]


@pytest.mark.parametrize(("list_operation", "report_operation"), [
    ("getAvailableReports", "getJobReport"), ("getAvailableJobReports", "getJobReports"),
    ("getAvailableJobReports", "getJobReport")])
async def test_binds_to_the_spelling_and_namespace_the_wsdl_publishes(
        clock: ManualClock, list_operation: str, report_operation: str) -> None:
    async with RetarusVoiceEmulator(USER, PASSWORD, clock=clock, namespace=SERVICE_NS,
                                    list_operation=list_operation,
                                    report_operation=report_operation) as emu:
        adapter = make(emu, clock)
        submission = await adapter.submit(batch(item("+491701234560")))
        emu.advance(20)
        [update] = await adapter.poll(submission)
        assert update.state is DeliveryState.DELIVERED
        assert await adapter.available_reports() == [submission.provider_ref]
        info = await adapter.check()
        assert info.details["namespace"] == SERVICE_NS
        assert info.details["operations"]["reports"] == list_operation
        assert emu.operations() == ["sendJob", report_operation, list_operation,
                                    "getVersionInfo", list_operation]
        await adapter.aclose()


async def test_an_envelope_in_a_foreign_namespace_is_a_client_fault(clock: ManualClock) -> None:
    async with RetarusVoiceEmulator(USER, PASSWORD, clock=clock, namespace=SERVICE_NS) as emu:
        wrong = make(emu, clock, wsdl_url="bundled", wsdl_namespace=NS)
        with pytest.raises(RejectedError) as err:
            await wrong.submit(batch(item("+491701234560")))
        assert "SOAP fault Client" in str(err.value) and SERVICE_NS in str(err.value)
        assert err.value.code == "UNKNOWN_OPERATION" and not emu.jobs
        await wrong.aclose()


# -- a hostile WSDL cannot make the daemon fetch other URLs (#12.12) ----------------------------

@pytest.fixture
async def elsewhere() -> AsyncIterator[list[str]]:
    """Another host (a loopback server on another port) that records every request it gets."""
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(request.path_qs)
        return web.Response(content_type="text/xml", text=(
            '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:x"/>'))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hits.append(f"http://127.0.0.1:{runner.addresses[0][1]}")  # [0]: the base URL
    yield hits
    await runner.cleanup()


@pytest.mark.parametrize("attack", ["import", "redirect", "entity", "file"])
async def test_a_hostile_wsdl_fetches_nothing_elsewhere(
        emu: RetarusVoiceEmulator, clock: ManualClock, elsewhere: list[str],
        caplog: pytest.LogCaptureFixture, attack: str) -> None:
    base = elsewhere[0]
    if attack == "import":
        emu.wsdl_imports = [f"{emu.base_url}?xsd=1", f"{base}/evil.xsd"]
    elif attack == "redirect":
        emu.wsdl_redirect = f"{base}/evil.wsdl"
    elif attack == "entity":
        emu.wsdl_doctype = f'<!DOCTYPE d [<!ENTITY x SYSTEM "{base}/evil-entity">]>'
    else:
        emu.wsdl_imports = ["file:///etc/hostname"]
    caplog.set_level(logging.WARNING)
    adapter = make(emu, clock, wsdl_namespace=NS)
    submission = await adapter.submit(batch(item("+491701234560")))
    assert elsewhere[1:] == []
    assert emu.xsd_requests <= 1  # the service's own schema is fetched, nothing else
    assert submission.data["wsdl"] == "bundled"  # the hostile WSDL was not used
    [warning] = [r.getMessage() for r in caplog.records if "bundled copy" in r.getMessage()]
    if attack in ("import", "redirect", "file"):
        assert "only its own host is trusted" in warning
    await adapter.aclose()


async def test_schemas_from_the_wsdls_own_host_are_loaded(emu: RetarusVoiceEmulator,
                                                          clock: ManualClock) -> None:
    emu.wsdl_imports = [f"{emu.base_url}?xsd=1"]
    adapter = make(emu, clock)
    assert (await adapter.submit(batch(item("+491701234560")))).data["wsdl"] == "live"
    assert emu.xsd_requests == 1
    await adapter.aclose()


async def test_a_local_wsdl_file_is_read_but_not_its_neighbours(
        clock: ManualClock, tmp_path: Path) -> None:
    async with RetarusVoiceEmulator(USER, PASSWORD, clock=clock, namespace=SERVICE_NS) as emu:
        local = tmp_path / "voice.wsdl"
        local.write_text(emu.wsdl(), "utf-8")
        adapter = make(emu, clock, wsdl_url=str(local))
        assert (await adapter.submit(batch(item("+491701234560")))).data["wsdl"] == "live"
        (tmp_path / "secret.xsd").write_text(
            '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:x"/>')
        emu.wsdl_imports = ["secret.xsd"]
        local.write_text(emu.wsdl(), "utf-8")
        hostile = make(emu, clock, wsdl_url=str(local))
        with pytest.raises(TransientError, match="only its own host is trusted"):
            await hostile.submit(batch(item("+491701234560")))
        for each in (adapter, hostile):
            await each.aclose()


async def test_entities_in_soap_answers_are_not_expanded(emu: RetarusVoiceEmulator,
                                                         clock: ManualClock,
                                                         elsewhere: list[str]) -> None:
    """An answer with a DTD (entity expansion, external entities) is refused, not parsed."""
    adapter = make(emu, clock)
    await adapter.check()
    doctype = (f'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "{elsewhere[0]}/xxe">'
               '<!ENTITY y "yyyyyyyyyy"><!ENTITY z "&y;&y;&y;&y;&y;&y;&y;&y;">]>')
    emu.fail_next(200, message=doctype + '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org'
                  '/soap/envelope/"><soap:Body>&x;&z;</soap:Body></soap:Envelope>')
    with pytest.raises(ProviderAnswerError, match="not a SOAP envelope"):
        await adapter.available_reports()
    assert elsewhere[1:] == []
    await adapter.aclose()


# -- the emulator holds the seed's own samples and rules ------------------------------------------

def _envelope(operation: str, children: str, namespace: str = NS) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap='
            f'"http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><tns:{operation} '
            f'xmlns:tns="{namespace}"><username>{USER}</username><password>{PASSWORD}'
            f'</password>{children}</tns:{operation}></soap:Body></soap:Envelope>').encode()


def _minimum_job(extra: str = "", recipient: str = "RecipientId.1") -> str:
    """The seed's "Java sample code (minimum)" for sendJob, as its JAXB client would send it."""
    text = base64.b64encode(b"Hello Voice-SOAP-service").decode()
    return (f"<contents><contentType>text/plain; charset=UTF8</contentType><content>{text}"
            f"</content></contents><recipients><recipientId>{recipient}</recipientId>"
            f"</recipients><callerId>GlobalCallerId</callerId><locale>en_US</locale>{extra}")


async def _post(emu: RetarusVoiceEmulator, body: bytes) -> tuple[int, Any]:
    async with httpx.AsyncClient() as client:
        answer = await client.post(emu.base_url, content=body,
                                   headers={"Content-Type": "text/xml; charset=utf-8"})
    return answer.status_code, etree.fromstring(answer.content)


def _text(root: Any, name: str) -> str | None:
    found = root.xpath(f"//*[local-name()='{name}']")
    return found[0].text if found else None


async def test_emulator_accepts_the_seeds_minimum_sample(emu: RetarusVoiceEmulator) -> None:
    status, root = await _post(emu, _envelope("sendJob", _minimum_job()))
    job_id = _text(root, "jobId")
    assert status == 200 and job_id in emu.jobs
    status, root = await _post(emu, _envelope("getJobReport", f"<jobId>{job_id}</jobId>"))
    assert status == 200
    [recipient] = root.xpath("//recipients")
    names = [etree.QName(child).localname for child in recipient]
    for required in ("recipientId", "callerId", "lastTryTs", "tryCount", "status", "state",
                     "statusText"):
        assert required in names, required  # lastTryTs too, empty before the first try


def _maximum_job() -> str:
    """The seed's "Java sample code (maximum)" for sendJob (two of its three recipients)."""
    def text(value: str) -> str:
        return base64.b64encode(value.encode()).decode()

    def recipient(number: int, blackouts: tuple[str, ...], first: str | None) -> str:
        periods = "".join(f"<blackoutPeriods>{p}</blackoutPeriods>" for p in blackouts)
        entries = (f"<personalization><entries><key>firstname</key><value>{first}</value>"
                   "</entries><entries><key>lastname</key><value>Mustermann</value></entries>"
                   "</personalization>") if first else ""
        return (f"<recipients><recipientId>RecipientId.{number}</recipientId>{periods}"
                f"<callerId>RecipientCallerId.{number}</callerId>{entries}</recipients>")

    return (
        "<contents><contentType>text/plain; charset=UTF8</contentType><content>"
        f"{text('Hello $first name $lastname, this is a call from Voice-SOAP-service')}"
        "</content></contents><contents><contentType>text/plain; charset=UTF8</contentType>"
        "<contentUrl>http://host/path/content.txt</contentUrl></contents>"
        + recipient(1, ("00:00/01:00", "02:00/03:00", "04:00/05:00"), "Max")
        + recipient(3, ("12:00/13:00", "14:00/15:00", "16:00/17:00"), None)
        + "<callerId>GlobalCallerId</callerId><locale>de_DE</locale>"
        "<blackoutPeriods>10:00/11:00</blackoutPeriods><blackoutPeriods>12:00/13:00"
        "</blackoutPeriods><costCenter>CostCenter</costCenter><reference>JobReference"
        "</reference><options><entries><key>duplicateDetection</key><value>false</value>"
        "</entries></options>")


async def test_emulator_accepts_the_seeds_maximum_sample(emu: RetarusVoiceEmulator) -> None:
    status, root = await _post(emu, _envelope("sendJob", _maximum_job()))
    job_id = _text(root, "jobId")
    assert status == 200 and job_id in emu.jobs
    assert (emu.jobs[job_id].reference, emu.jobs[job_id].cost_center) == (
        "JobReference", "CostCenter")


@pytest.mark.parametrize(("period", "accepted"), [
    ("2026-01-01T13:00:00Z/2026-01-01T15:00:00Z", True),  # start/end
    ("2026-01-01T13:00:00Z/P1DT2H", True),  # start/duration
    ("PT2H/2026-01-01T15:00:00+02:00", True),  # duration/end
    ("2026-01-01T13:00:00Z", False),  # a bare start bounds nothing
    ("P1D/PT2H", False), ("2026-01-01T15:00:00Z/2026-01-01T13:00:00Z", False),
    ("10:00Z/11:00Z", False), ("yesterday/tomorrow", False),
])
async def test_emulator_takes_only_the_seeds_job_periods(emu: RetarusVoiceEmulator, period: str,
                                                         accepted: bool) -> None:
    status, root = await _post(emu, _envelope(
        "sendJob", _minimum_job(f"<jobPeriod>{period}</jobPeriod>")))
    assert (status == 200) is accepted
    if not accepted:
        assert _text(root, "faultcode") == "soap:Client" and _text(root, "code") == "INVALID_PERIOD"
    options: dict[str, Any] = {"job_period": period}
    if accepted:
        RetarusVoiceProvider.validate_alert_options(options)
    else:
        with pytest.raises(vol.Invalid):
            RetarusVoiceProvider.validate_alert_options(options)


async def test_emulator_refuses_foreign_namespaces_and_unpublished_spellings(
        emu: RetarusVoiceEmulator) -> None:
    status, root = await _post(emu, _envelope("sendJob", _minimum_job(), "urn:invented"))
    assert (status, _text(root, "faultcode")) == (500, "soap:Client")
    status, root = await _post(emu, _envelope("getAvailableJobReports", ""))
    assert (status, _text(root, "code")) == (500, "UNKNOWN_OPERATION")
    status, root = await _post(emu, _envelope("sendJob", _minimum_job(recipient="a b")))
    assert (status, _text(root, "code")) == (500, "INVALID_RECIPIENT")
    assert not emu.jobs


async def test_shared_http_client_is_used_and_left_alone(emu: RetarusVoiceEmulator,
                                                         clock: ManualClock) -> None:
    async with httpx.AsyncClient(headers={"X-Host": "home-assistant"}) as http:
        adapter = make(emu, clock, http=http)
        await adapter.check()
        await adapter.aclose()
        assert http.headers["X-Host"] == "home-assistant" and not http.is_closed
        assert emu.requests[-1].headers["X-Host"] == "home-assistant"
        assert emu.requests[-1].headers["Content-Type"].startswith("text/xml")


async def test_no_credentials_in_logs_or_errors(emu: RetarusVoiceEmulator, clock: ManualClock,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = make(emu, clock)
    wrong = make(emu, clock, password="Other-wrong-pw")
    errors: list[Exception] = []
    await adapter.check()
    emu.fail_next(503, times=1)
    emu.fault_next("Server", "Internal error")
    submission = await adapter.submit(batch(item("+491701234560")))
    await adapter.poll(submission)
    for call in (wrong.check, lambda: adapter.job_report("missing")):
        try:
            await call()
        except ProviderError as err:
            errors.append(err)
    assert len(errors) == 2 and clock.slept
    texts = [caplog.text, *(str(e) for e in errors), *(repr(e.args) for e in errors)]
    for secret in (PASSWORD, "Other-wrong-pw", USER):
        assert not any(secret in text for text in texts), secret
    for each in (adapter, wrong):
        await each.aclose()


# -- pure helpers ------------------------------------------------------------------------------

def _detail(code: str) -> Any:
    return etree.fromstring(f"<detail><f><code>{code}</code><message>m</message></f></detail>")


@pytest.mark.parametrize(("code", "message", "error"), [
    ("soap:Client", "Authentication failed", AuthError),
    ("soap:Server", "Login expired", AuthError),
    ("soap:Client", "Duplicate job", DuplicateError),
    ("soap:Client", "Validation failed", RejectedError),
    ("soap:Server", "Internal error", TransientError),
    ("soap:Receiver", "Overloaded", TransientError),
    ("soap:VersionMismatch", "Wrong envelope", RejectedError),
    (None, None, RejectedError),
])
def test_fault_mapping(code: str | None, message: str | None, error: type[ProviderError]) -> None:
    mapped = fault_error("voice", code, message, _detail("E1"))
    assert type(mapped) is error and mapped.code == "E1"


def test_answer_parsing_is_tolerant() -> None:
    assert parse_job_id("  913af270 ") == "913af270"
    assert parse_job_id({"jobId": "abc", "extra": 1}) == "abc"
    assert parse_job_id(None) is None
    assert parse_job_ids({"jobIds": "one"}) == ["one"]
    assert parse_job_ids(["a", "", None, "b"]) == ["a", "b"]
    assert parse_timestamp("2014-09-09 11:37:36 +0200") == datetime(
        2014, 9, 9, 9, 37, 36, tzinfo=UTC)
    assert parse_timestamp("2014-08-01T13:00:00Z") == datetime(2014, 8, 1, 13, tzinfo=UTC)
    assert parse_timestamp("soon") is None and parse_timestamp("") is None
    assert VersionInfo(8, None, 2015, 6, None).version == "2015.6 (build 00008)"
    assert VersionInfo(None, None, None, None, None).version == "unknown"


def test_reports_match_what_was_sent() -> None:
    reports = [RecipientReport("00491701234560", "FAILED"), RecipientReport("491701234560",
                                                                            "SUCCESSFUL")]
    matched = match_reports(["+491701234560", "+491701234560", "+491701234561"], reports)
    assert [m.status if m else None for m in matched] == ["FAILED", "SUCCESSFUL", None]
