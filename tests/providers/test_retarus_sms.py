"""The Retarus SMS REST v1 adapter against its emulator, over real HTTP."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import voluptuous as vol

from alertline.clock import ManualClock
from alertline.errors import (
    AuthError,
    ConfigError,
    DuplicateError,
    ProviderAnswerError,
    RateLimitedError,
    RejectedError,
    TransientError,
    ValidationError,
)
from alertline.model import Channel, DeliveryState, Priority
from alertline.providers.base import Batch, BatchItem, ProviderContext, Submission, SubmittedItem
from alertline.providers.registry import adapter_class
from alertline.providers.retarus.sms import RetarusSmsProvider
from alertline.providers.retarus.status import normalise
from tests.emulators.retarus_sms import RetarusSmsEmulator, parse_rate_limit

USER = "acme-sms"
PASSWORD = "s3cr3t-Pa55word"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def emu(clock: ManualClock) -> AsyncIterator[RetarusSmsEmulator]:
    async with RetarusSmsEmulator(user=USER, password=PASSWORD, clock=clock,
                                  step_seconds=None) as emulator:
        yield emulator


@pytest.fixture
async def make(emu: RetarusSmsEmulator, clock: ManualClock) -> AsyncIterator[Any]:
    providers: list[RetarusSmsProvider] = []

    def build(**overrides: Any) -> RetarusSmsProvider:
        options = {"username": USER, "password": PASSWORD, "base_url": emu.base_url,
                   "status_urls": [emu.base_url], **overrides}
        provider = RetarusSmsProvider("retarus", RetarusSmsProvider.validate_options(options),
                                      ProviderContext(clock=clock))
        providers.append(provider)
        return provider

    yield build
    for provider in providers:
        await provider.aclose()


def batch(*numbers: str, text: str = "Water leak in the basement", **kwargs: Any) -> Batch:
    items = tuple(BatchItem(delivery_id=f"d{index}-{number[-4:]}", alert_id="alert-1",
                            number=number, text=text, template=text)
                  for index, number in enumerate(numbers))
    return Batch(channel=Channel.SMS, items=items, **kwargs)


def last_body(emu: RetarusSmsEmulator) -> dict[str, Any]:
    posts = [r for r in emu.requests if r.method == "POST"]
    body: dict[str, Any] = posts[-1].body
    return body


# ---- configuration -----------------------------------------------------------------------

def test_registry_and_defaults() -> None:
    assert adapter_class("retarus_sms") is RetarusSmsProvider
    options = RetarusSmsProvider.validate_options({"username": USER, "password": PASSWORD})
    assert options["base_url"] == "https://sms4a.eu.retarus.com/rest/v1"
    assert options["status_urls"] == ["https://sms4a.de2.retarus.com/rest/v1",
                                      "https://sms4a.de1.retarus.com/rest/v1"]
    assert options["qos"] == "NORMAL"
    assert options["status_requested"] is True
    assert options["duplicate_detection"] is True
    assert options["max_recipients"] == 3000
    for marker in RetarusSmsProvider.options_schema:
        assert marker.description, marker


@pytest.mark.parametrize("bad", [{"sender": "Much too long"}, {"validity_min": 3},
                                 {"validity_min": 2881}, {"max_parts": 21}, {"qos": "fast"},
                                 {"encoding": "latin-1"}, {"invalid_characters": "DROP"},
                                 {"blackout_periods": ["2026-03-02T10:00Z"]},
                                 {"max_recipients": 3001}, {"billcode": "x" * 71},
                                 {"customer_ref": "x" * 65}])
def test_config_rejects_bad_values(bad: dict[str, Any]) -> None:
    with pytest.raises(vol.Invalid):
        RetarusSmsProvider.validate_options({"username": USER, "password": PASSWORD, **bad})
    with pytest.raises(ConfigError):
        RetarusSmsProvider("r", {"username": USER, "password": PASSWORD, **bad}, ProviderContext())


def test_idempotent_submit_follows_duplicate_detection() -> None:
    on = RetarusSmsProvider("r", {"username": USER, "password": PASSWORD}, ProviderContext())
    off = RetarusSmsProvider("r", {"username": USER, "password": PASSWORD,
                                   "duplicate_detection": False}, ProviderContext())
    assert on.capabilities.idempotent_submit is True
    assert off.capabilities.idempotent_submit is False
    assert on.capabilities.max_recipients == 3000
    assert on.capabilities.channels == frozenset({Channel.SMS})


def test_alert_options_validated_case_insensitive_and_by_retarus_names() -> None:
    checked = RetarusSmsProvider.validate_alert_options(
        {"qos": "express", "encoding": "utf-16", "invalidCharacters": "to_utf16",
         "validityMin": 30, "recipients": {"+491701234567": {"blackoutPeriods": [
             "2026-03-02T12:00Z/2026-03-02T13:00Z"]}}})
    assert checked == {"qos": "EXPRESS", "encoding": "UTF-16", "invalid_characters": "TO_UTF16",
                       "validity_min": 30, "recipients": {"+491701234567": {
                           "blackout_periods": ["2026-03-02T12:00Z/2026-03-02T13:00Z"]}}}
    for bad in ({"validityMin": 4}, {"qos": "slow"}, {"job_period": "tomorrow"},
                {"maxParts": 0}, {"unknown": 1}):
        with pytest.raises(vol.Invalid):
            RetarusSmsProvider.validate_alert_options(bad)


# ---- the job request ---------------------------------------------------------------------

async def test_every_option_reaches_the_wire(make: Any, emu: RetarusSmsEmulator) -> None:
    provider = make(sender="ACME", encoding="utf-16", billcode="Ops", status_requested=True,
                    flash=True, customer_ref="JOBREF.1", validity_min=60, max_parts=3,
                    invalid_characters="transliterate", qos="normal", duplicate_detection=True,
                    blackout_periods=["2026-03-02T22:00:00.000+01:00/2026-03-03T07:00:00.000+01:00"])
    items = (
        BatchItem("d1", "a1", "+491701234560", "Hello Anna", "Hello {name}", {"name": "Anna"}),
        BatchItem("d2", "a1", "+491701234561", "Hello Bob", "Hello {name}", {"name": "Bob"}),
        BatchItem("d3", "a1", "+17615500002", "Hello Anna", "Hello {name}", {"name": "Anna"},
                  contact="carol"),
    )
    recipient_period = "2026-03-02T19:00:00.000+01:00/2026-03-02T20:00:00.000+01:00"
    sub = await provider.submit(Batch(
        channel=Channel.SMS, items=items, sender="Retarus", not_before=START + timedelta(hours=1),
        blackout_periods=("2026-03-02T12:00:00.000+01:00/2026-03-02T13:00:00.000+01:00",),
        options={"recipients": {"carol": {"customerRef": "RECIREF.3",
                                          "blackoutPeriods": [recipient_period]}}}))
    assert last_body(emu) == {
        "options": {
            "src": "Retarus", "encoding": "UTF-16", "billcode": "Ops", "statusRequested": True,
            "flash": True, "customerRef": "JOBREF.1", "validityMin": 60, "maxParts": 3,
            "invalidCharacters": "TRANSLITERATE", "qos": "NORMAL",
            "jobPeriod": "2026-03-02T10:00:00.000+00:00", "duplicateDetection": True,
            "blackoutPeriods": ["2026-03-02T22:00:00.000+01:00/2026-03-03T07:00:00.000+01:00",
                                "2026-03-02T12:00:00.000+01:00/2026-03-02T13:00:00.000+01:00"]},
        "messages": [
            {"text": "Hello Anna", "recipients": [
                {"dst": "+491701234560", "customerRef": "d1"},
                {"dst": "+17615500002", "customerRef": "RECIREF.3",
                 "blackoutPeriods": [recipient_period]}]},
            {"text": "Hello Bob", "recipients": [{"dst": "+491701234561", "customerRef": "d2"}]},
        ]}
    assert sub.provider_ref in emu.jobs
    assert [i.state for i in sub.items] == [DeliveryState.SUBMITTED] * 3
    assert sub.data == {"job_id": sub.provider_ref, "sent_to": emu.base_url,
                        "refs": {"RECIREF.3": "d3"}}
    report = await provider.job_report(sub.provider_ref)
    assert report is not None and report.job_id == sub.provider_ref
    assert report.raw["encoding"] == "utf-16" and report.raw["flash"] is True
    assert len(report.recipient_ids) == 3 and not report.finished


async def test_alert_values_override_config(make: Any, emu: RetarusSmsEmulator) -> None:
    provider = make(sender="ACME", qos="NORMAL", validity_min=120, status_requested=True,
                    blackout_periods=["2026-03-02T22:00Z/2026-03-03T07:00Z"])
    await provider.submit(batch("+491701234560", priority=Priority.HIGH,
                                expires=START + timedelta(minutes=30, seconds=5)))
    options = last_body(emu)["options"]
    assert options["qos"] == "EXPRESS" and options["validityMin"] == 31
    assert options["src"] == "ACME" and options["customerRef"] == "alert-1"
    assert "jobPeriod" not in options
    await provider.submit(batch("+491701234561", priority=Priority.HIGH,
                                not_before=START - timedelta(minutes=1),
                                options={"qos": "normal", "statusRequested": False,
                                         "validity_min": 0, "blackout_periods": [],
                                         "customer_ref": "mine", "flash": True, "maxParts": 2,
                                         "billcode": "B", "encoding": "standard",
                                         "invalid_characters": "replace",
                                         "jobPeriod": "2026-03-02T11:00:00+01:00",
                                         "duplicateDetection": False}))
    assert last_body(emu)["options"] == {
        "src": "ACME", "encoding": "STANDARD", "billcode": "B", "statusRequested": False,
        "flash": True, "customerRef": "mine", "validityMin": 0, "maxParts": 2,
        "invalidCharacters": "REPLACE", "qos": "NORMAL", "jobPeriod": "2026-03-02T11:00:00+01:00",
        "duplicateDetection": False}


@pytest.mark.parametrize(("expires_in", "validity"), [(timedelta(seconds=30), 5),
                                                      (timedelta(minutes=1), 5),
                                                      (timedelta(hours=3), 180),
                                                      (timedelta(days=5), 2880)])
async def test_expiry_becomes_clamped_validity(make: Any, emu: RetarusSmsEmulator,
                                               expires_in: timedelta, validity: int) -> None:
    await make().submit(batch("+491701234560", expires=START + expires_in))
    assert last_body(emu)["options"]["validityMin"] == validity


@pytest.mark.parametrize("sender", ["ACME", "+491701234567", "12345678901234567890",
                                    "Ops-Team 1!", "A[b]~`{c}|"])
async def test_valid_sender_ids(make: Any, emu: RetarusSmsEmulator, sender: str) -> None:
    await make().submit(batch("+491701234560", sender=sender))
    assert last_body(emu)["options"]["src"] == sender


@pytest.mark.parametrize("sender", ["TwelveChars!", "+123456789012345678901", "Ümlaut",
                                    "tab\there", "A\u00a0B"])
async def test_invalid_sender_id_is_refused_before_sending(make: Any, emu: RetarusSmsEmulator,
                                                           sender: str) -> None:
    with pytest.raises(ValidationError) as caught:
        await make().submit(batch("+491701234560", sender=sender))
    assert caught.value.field == "sender"
    assert emu.count("POST", "/jobs") == 0


async def test_bad_alert_input_names_the_field(make: Any, emu: RetarusSmsEmulator) -> None:
    provider = make()
    with pytest.raises(ValidationError) as caught:
        await provider.submit(batch("+491701234560", options={"validityMin": 9999}))
    assert caught.value.field == "options.validity_min"
    with pytest.raises(ValidationError) as caught:
        await provider.submit(batch("+491701234560", blackout_periods=("22:00/07:00",)))
    assert caught.value.field == "blackout_periods"
    with pytest.raises(ValidationError) as caught:
        await provider.submit(batch("+491701234560", text="  "))
    assert caught.value.field == "message"
    with pytest.raises(ValidationError) as caught:
        await provider.submit(batch(*[f"+4917012{n:05d}" for n in range(3001)]))
    assert caught.value.field == "to"
    assert emu.count("POST", "/jobs") == 0


async def test_7500_recipients_make_exactly_three_jobs(make: Any,
                                                       emu: RetarusSmsEmulator) -> None:
    provider = make()
    numbers = [f"+4917{n:08d}" for n in range(7500)]
    size = provider.capabilities.max_recipients
    subs = [await provider.submit(batch(*numbers[i:i + size]))
            for i in range(0, len(numbers), size)]
    assert emu.count("POST", "/jobs") == 3
    assert [len(emu.jobs[s.provider_ref or ""].recipients) for s in subs] == [3000, 3000, 1500]
    assert sum(len(s.items) for s in subs) == 7500


# ---- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "error", "text"), [
    (400, RejectedError, "Invalid JobRequest-data (qos, encoding, ..)"),
    (422, RejectedError, "Invalid JobRequest-data (invalid chars, no messages, ..)"),
    (409, DuplicateError, "Duplicate job (detected by enabled duplicate-detection)"),
    (429, RateLimitedError, "Too many requests in the last 10 seconds (retry later)"),
    (500, TransientError, "Can't accept job or unable to transliterate sms-text"),
    (503, TransientError, "HTTP 503"),
])
async def test_documented_status_codes(make: Any, emu: RetarusSmsEmulator, status: int,
                                       error: type[Exception], text: str) -> None:
    provider = make(duplicate_detection=False, retry_attempts=2)
    emu.fail_next(status, count=2, method="POST")
    with pytest.raises(error) as caught:
        await provider.submit(batch("+491701234560"))
    assert text in str(caught.value)
    assert getattr(caught.value, "status", None) == status
    retried = status in (500, 503)  # a 429 pauses the provider's dispatcher instead
    assert emu.count("POST", "/jobs") == (2 if retried else 1)


async def test_wrong_password_is_auth_error_everywhere(make: Any,
                                                       emu: RetarusSmsEmulator) -> None:
    provider = make(password="wrong-password")
    with pytest.raises(AuthError, match="Authentication failed"):
        await provider.submit(batch("+491701234560"))
    with pytest.raises(AuthError):
        await provider.check()
    with pytest.raises(AuthError):
        await provider.poll(Submission("J.20260302-090000.000-0emu00000000000001", (), START))
    assert emu.count("POST", "/jobs") == 1  # never retried


async def test_refused_characters_give_422_with_the_providers_message(
        make: Any, clock: ManualClock) -> None:
    async with RetarusSmsEmulator(user=USER, password=PASSWORD, clock=clock,
                                  error_bodies=True) as emulator:
        provider = make(base_url=emulator.base_url, encoding="STANDARD",
                        invalid_characters="REFUSE")
        with pytest.raises(RejectedError) as caught:
            await provider.submit(batch("+491701234560", text="Leak 💧"))
        assert caught.value.status == 422 and caught.value.code == "422"
        assert "invalid characters" in str(caught.value)
        sub = await provider.submit(batch("+491701234560", text="Leak 💧",
                                          options={"encoding": "UTF-16"}))
        assert sub.provider_ref in emulator.jobs


async def test_nulls_and_unknown_fields_are_absent_like_the_java_service(
        emu: RetarusSmsEmulator) -> None:
    # the shape Retarus' Python SDK can post: explicit nulls, snake_case names the service ignores
    body = {"options": {"src": "retarus", "encoding": None, "qos": None, "jobPeriod": None,
                        "invalidCharacters": None, "status_requested": True},
            "messages": [{"text": "Hello", "recipients": [{"dst": "+491701234560"}]}]}
    async with httpx.AsyncClient(auth=(USER, PASSWORD)) as client:
        answer = await client.post(f"{emu.base_url}/jobs", json=body)
        assert answer.status_code == 201, answer.text
        report = await client.get(f"{emu.base_url}/jobs/{answer.json()['jobId']}")
    assert report.json()["encoding"] == "standard" and report.json()["qos"] == "NORMAL"


async def test_answer_without_job_id(make: Any, emu: RetarusSmsEmulator) -> None:
    emu.fail_next(201, method="POST")
    with pytest.raises(ProviderAnswerError):
        await make().submit(batch("+491701234560"))


# ---- retries -----------------------------------------------------------------------------

async def test_5xx_are_retried_with_backoff(make: Any, emu: RetarusSmsEmulator,
                                            clock: ManualClock) -> None:
    provider = make(retry_base_delay=1.0)
    emu.fail_next(500, method="POST")
    emu.fail_next(502, method="POST")
    sub = await provider.submit(batch("+491701234560"))
    assert sub.provider_ref in emu.jobs
    assert [r.status for r in emu.requests] == [500, 502, 201]
    assert len(clock.slept) == 2
    assert 0.8 <= clock.slept[0] <= 1.2 and 1.6 <= clock.slept[1] <= 2.4


async def test_429_raised_at_once_with_retry_after(make: Any, emu: RetarusSmsEmulator,
                                                   clock: ManualClock) -> None:
    # no tight retry loop: the dispatcher pauses the provider for Retry-After (dispatch.py)
    emu.fail_next(429, method="POST", retry_after=7)
    with pytest.raises(RateLimitedError) as caught:
        await make().submit(batch("+491701234560"))
    assert caught.value.retry_after == 7.0 and clock.slept == []


async def test_rate_limit_admits_n_jobs_per_documented_window(make: Any,
                                                              clock: ManualClock) -> None:
    async with RetarusSmsEmulator(user=USER, password=PASSWORD, clock=clock,
                                  rate_limit=2) as emulator:
        assert emulator.rate_limit == (2, 10.0)  # N alone: the seed's 10-second window
        provider = make(base_url=emulator.base_url, retry_attempts=1)
        for n in range(2):
            await provider.submit(batch(f"+49170123456{n}"))
        with pytest.raises(RateLimitedError) as caught:
            await provider.submit(batch("+491701234562"))
        # the seed promises no Retry-After: the engine must not be told a made-up hint
        assert caught.value.retry_after is None and caught.value.status == 429
        last = emulator.requests[-1]
        assert last.status == 429 and emulator.rejected_429 == 1
        assert emulator.count("GET", "/sms") == 0 and len(emulator.jobs) == 2
        clock.advance(10)
        await provider.submit(batch("+491701234562"))
        assert len(emulator.jobs) == 3 and emulator.rejected_429 == 1


async def test_rate_limit_set_later_with_retry_after(make: Any, emu: RetarusSmsEmulator,
                                                     clock: ManualClock) -> None:
    provider = make(retry_attempts=1)
    await provider.submit(batch("+491701234560"))  # unlimited until switched on
    emu.rate_limit = (1, 60.0)
    emu.rate_limit_retry_after = True
    await provider.submit(batch("+491701234561"))
    clock.advance(15)
    with pytest.raises(RateLimitedError) as caught:
        await provider.submit(batch("+491701234562"))
    assert caught.value.retry_after == 45.0  # the header, when the switch is on
    emu.rate_limit = None
    await provider.submit(batch("+491701234562"))
    assert emu.rejected_429 == 1 and len(emu.jobs) == 3


def test_rate_limit_setting_forms() -> None:
    assert parse_rate_limit("5") == (5, 10.0)
    assert parse_rate_limit("3/2.5") == (3, 2.5)
    with pytest.raises(ValueError):
        parse_rate_limit("0")


async def test_post_timeout_resent_only_with_duplicate_detection(
        make: Any, emu: RetarusSmsEmulator) -> None:
    provider = make(timeout=0.2)
    emu.slow_next(2.0)
    sub = await provider.submit(batch("+491701234560", "+491701234568"))
    # the first POST was processed but its answer came too late; the resend got 409
    assert [r.status for r in emu.requests if r.method == "POST"] == [201, 409]
    assert len(emu.jobs) == 1 and sub.provider_ref == next(iter(emu.jobs))
    assert {i.provider_status for i in sub.items} == {"DUPLICATE"}
    assert "already accepted as job" in (sub.items[0].reason or "")
    emu.advance(steps=3)
    assert {u.state for u in await provider.poll(sub)} == {DeliveryState.DELIVERED}

    plain = make(timeout=0.2, duplicate_detection=False)
    emu.slow_next(2.0)
    with pytest.raises(TransientError, match="timed out"):
        await plain.submit(batch("+491701234562"))
    assert [r.status for r in emu.requests if r.method == "POST"] == [201, 409, 201]


async def test_duplicate_whose_job_cannot_be_found_is_sent(make: Any,
                                                          emu: RetarusSmsEmulator) -> None:
    provider = make(duplicate_lookup_limit=0)
    first = await provider.submit(batch("+491701234560"))
    again = await provider.submit(batch("+491701234560"))
    assert first.provider_ref and again.provider_ref is None
    # not left open for the 49-hour tracking deadline: it went out, and the report says how
    assert again.items[0].state is DeliveryState.SENT
    assert again.items[0].provider_status == "DUPLICATE"
    assert "409" in (again.items[0].reason or "") and "not found" in (again.items[0].reason or "")
    assert again.data["duplicate"] is True
    assert len(emu.jobs) == 1  # no second SMS
    searching = make()
    found = await searching.submit(batch("+491701234560"))
    assert found.provider_ref == first.provider_ref


async def test_duplicate_lookup_skips_jobs_of_other_alerts(make: Any,
                                                          clock: ManualClock) -> None:
    async with RetarusSmsEmulator(user=USER, password=PASSWORD, clock=clock,
                                  list_format="reports") as emulator:
        provider = make(base_url=emulator.base_url, status_urls=[emulator.base_url])
        for n in range(5):
            others = batch(f"+49170123456{n}")
            await provider.submit(Batch(channel=Channel.SMS, items=tuple(
                BatchItem(f"o{n}", f"other-{n}", i.number, i.text, i.template)
                for i in others.items)))
        first = await provider.submit(batch("+491701234560"))
        clock.advance(120)
        again = await provider.submit(batch("+491701234560"))
        assert again.provider_ref == first.provider_ref
        assert emulator.count("GET", "/sms") == 1  # only the job with the same customerRef


def test_validated_alert_options_validate_again_unchanged() -> None:
    options = {"qos": "Express", "validityMin": 90, "jobPeriod": "2026-03-02T11:00:00+01:00",
               "blackoutPeriods": ["2026-03-02T12:00Z/2026-03-02T13:00Z"],
               "recipients": {"alice": {"customerRef": "R1"}}}
    once = RetarusSmsProvider.validate_alert_options(options)
    assert RetarusSmsProvider.validate_alert_options(once) == once


# ---- status ------------------------------------------------------------------------------

@pytest.mark.parametrize(("process", "status", "state"), [
    ("OPEN", None, DeliveryState.SUBMITTED),
    ("OPEN", "CON_ERR", DeliveryState.SUBMITTED),
    ("OPEN", "SUC_ACC", DeliveryState.SUBMITTED),
    ("RUNNING", "SUC_ACC", DeliveryState.SUBMITTED),
    ("RUNNING", None, DeliveryState.SUBMITTED),
    ("DONE", "SUC_ACC", DeliveryState.SENT),
    ("DONE", "SUC_FIN", DeliveryState.DELIVERED),
    ("DONE", "INVALID_DST", DeliveryState.FAILED),
    ("DONE", "BLOCKED", DeliveryState.FAILED),
    ("DONE", "TIMEOUT", DeliveryState.EXPIRED),
    ("DONE", "CON_ERR", DeliveryState.FAILED),
    ("DONE", "FAILED_FIN", DeliveryState.FAILED),
    ("DONE", "NOT_ACC_FIN", DeliveryState.FAILED),
    ("DONE", "SEND_ERR", DeliveryState.FAILED),
    ("DONE", "STATUS_ERR", DeliveryState.SENT),
    ("DONE", "SOMETHING_NEW", DeliveryState.FAILED),
    ("CANCELED", None, DeliveryState.CANCELLED),
    ("CANCELED", "NOT_ACC_REC", DeliveryState.CANCELLED),
    ("KILL", "SUC_ACC", DeliveryState.SENT),  # "SMS was sent, but cancelled and no notification"
    ("KILL", None, DeliveryState.SENT),
    ("done", "suc_fin", DeliveryState.DELIVERED),
    ("LATER", None, DeliveryState.SUBMITTED),
    (None, None, DeliveryState.SUBMITTED),
])
def test_status_table(process: str | None, status: str | None, state: DeliveryState) -> None:
    result, reason = normalise(process, status)
    assert result is state
    assert reason or (process is None and status is None)


async def test_poll_follows_a_job_to_delivered(make: Any, emu: RetarusSmsEmulator) -> None:
    provider = make()
    sub = await provider.submit(batch("+491701234560"))
    seen = []
    for _ in range(3):
        (update,) = await provider.poll(sub)
        seen.append((update.state, update.provider_status))
        emu.advance()
    assert seen == [(DeliveryState.SUBMITTED, "OPEN"),
                    (DeliveryState.SUBMITTED, "RUNNING SUC_ACC"),
                    (DeliveryState.DELIVERED, "DONE SUC_FIN")]
    assert update.delivery_id == "d0-4560" and update.provider_ref == sub.provider_ref
    assert update.provider_message_id == emu.jobs[sub.provider_ref or ""].recipients[0].sms_id
    assert update.reason and update.reason.startswith("message_state:DELIVERED")
    assert update.at is not None
    assert {"smsId", "sentTs", "finishedTs", "customerRef", "meaning"} <= set(update.details)


async def test_without_status_request_success_is_sent(make: Any, emu: RetarusSmsEmulator) -> None:
    provider = make(status_requested=False)
    sub = await provider.submit(batch("+491701234560"))
    emu.advance(steps=5)
    (update,) = await provider.poll(sub)
    assert (update.state, update.provider_status) == (DeliveryState.SENT, "DONE SUC_ACC")


async def test_every_emulated_outcome(make: Any, emu: RetarusSmsEmulator) -> None:
    provider = make()
    numbers = [f"+49170123456{d}" for d in "0123456789"]
    sub = await provider.submit(batch(*numbers))
    emu.advance(steps=5)
    job = sub.provider_ref or ""
    emu.set_status(job, numbers[0], "CANCELED")
    emu.set_status(job, numbers[8], "KILL", "SUC_ACC")
    states = {u.number: (u.state, u.provider_status) for u in await provider.poll(sub)}
    assert [states[n] for n in numbers] == [
        (DeliveryState.CANCELLED, "CANCELED"),
        (DeliveryState.FAILED, "DONE INVALID_DST"),
        (DeliveryState.FAILED, "DONE BLOCKED"),
        (DeliveryState.EXPIRED, "DONE TIMEOUT"),
        (DeliveryState.FAILED, "DONE CON_ERR"),
        (DeliveryState.FAILED, "DONE FAILED_FIN"),
        (DeliveryState.FAILED, "DONE NOT_ACC_FIN"),
        (DeliveryState.FAILED, "DONE SEND_ERR"),
        (DeliveryState.SENT, "KILL SUC_ACC"),
        (DeliveryState.SUBMITTED, "OPEN"),
    ]


async def test_kill_is_sent_with_the_seeds_meaning(make: Any, emu: RetarusSmsEmulator) -> None:
    provider = make()
    sub = await provider.submit(batch("+491701234560"))
    emu.advance(steps=1)
    emu.set_status(sub.provider_ref or "", "+491701234560", "KILL", "SUC_ACC")
    (update,) = await provider.poll(sub)
    assert update.state is DeliveryState.SENT
    assert update.details["meaning"] == ("sent, but cancelled and no delivery notification has "
                                         "been received")


def test_running_at_the_tracking_deadline_is_sent(make: Any) -> None:
    provider = make()
    assert provider.state_at_deadline("RUNNING SUC_ACC") == (
        DeliveryState.SENT, "sent, but no delivery notification was received before the "
        "tracking deadline")
    assert provider.state_at_deadline("OPEN") is None  # never sent: it expires
    assert provider.state_at_deadline(None) is None


async def test_no_recipient_report_yet_is_201_not_an_error(make: Any, emu: RetarusSmsEmulator,
                                                           clock: ManualClock) -> None:
    provider = make()
    later = START + timedelta(hours=2)
    sub = await provider.submit(batch("+491701234560", not_before=later))
    answer = await provider.recipient_reports(sub.provider_ref or "")
    assert answer == [] and emu.requests[-1].status == 201  # "Send job successful", no content
    assert await provider.poll(sub) == []
    clock.advance(2 * 3600)
    (update,) = await provider.poll(sub)
    assert (update.state, update.provider_status) == (DeliveryState.SUBMITTED, "OPEN")


async def test_progress_on_the_emulator_clock(make: Any, clock: ManualClock) -> None:
    async with RetarusSmsEmulator(user=USER, password=PASSWORD, clock=clock,
                                  step_seconds=5) as emulator:
        provider = make(base_url=emulator.base_url, status_urls=[emulator.base_url])
        sub = await provider.submit(batch("+491701234560", not_before=START + timedelta(
            minutes=10)))
        clock.advance(60)
        assert await provider.poll(sub) == []  # waits for its jobPeriod: 201, no report yet
        clock.advance(540)
        assert [u.provider_status for u in await provider.poll(sub)] == ["OPEN"]
        clock.advance(10)
        assert [u.state for u in await provider.poll(sub)] == [DeliveryState.DELIVERED]


async def test_recipients_matched_by_reference_then_number(make: Any,
                                                           emu: RetarusSmsEmulator) -> None:
    items = (BatchItem("first", "a1", "+491701234560", "Leak", "Leak"),
             BatchItem("second", "a2", "+491701234560", "Fire", "Fire"))
    provider = make()
    sub = await provider.submit(Batch(channel=Channel.SMS, items=items))
    emu.set_status(sub.provider_ref or "", "+491701234560", "DONE", "SUC_FIN")
    assert sorted(u.delivery_id or "" for u in await provider.poll(sub)) == ["first", "second"]
    bare = make(recipient_refs=False)
    sub = await bare.submit(batch("+491701234560", "+491701234561"))
    assert all("customerRef" not in r for r in last_body(emu)["messages"][0]["recipients"])
    assert sorted(u.delivery_id or "" for u in await bare.poll(sub)) == ["d0-4560", "d1-4561"]


async def test_status_reads_fall_back_between_data_centres(make: Any,
                                                           clock: ManualClock) -> None:
    async with RetarusSmsEmulator(user=USER, password=PASSWORD, clock=clock) as de2, \
            RetarusSmsEmulator(user=USER, password=PASSWORD, clock=clock) as de1:
        provider = make(base_url=de1.base_url, status_urls=[de2.base_url, de1.base_url],
                        retry_attempts=2)
        sub = await provider.submit(batch("+491701234560"))
        assert len(await provider.poll(sub)) == 1
        assert (de2.count("GET", "/sms"), de1.count("GET", "/sms")) == (1, 1)
        assert [r.status for r in de2.requests] == [404]
        de2.fail_next(500, count=2)
        assert (await provider.job_report(sub.provider_ref or "")) is not None
        assert de1.count("GET", "/jobs/{id}") == 1
        unknown = "J.20260302-090000.000-0emu00000000009999"
        assert await provider.job_report(unknown) is None
        assert await provider.poll(Submission(unknown, sub.items, START)) == []
        de1.fail_next(503, count=2)
        with pytest.raises(TransientError):  # 404 there, down here: nothing certain
            await provider.recipient_reports(sub.provider_ref or "")


async def test_list_jobs_paging_and_filters(make: Any, emu: RetarusSmsEmulator,
                                            clock: ManualClock) -> None:
    provider = make()
    ids = []
    for n in range(5):
        ids.append((await provider.submit(batch(f"+49170123456{n}"))).provider_ref)
        clock.advance(60)
    since, until = START - timedelta(minutes=1), clock.now()
    assert await provider.list_jobs(since, until) == ids
    assert await provider.list_jobs(since, until, limit=2, offset=2) == ids[2:4]
    assert [job async for job in provider.iter_jobs(since, until, page_size=2)] == ids
    emu.advance(ids[0], steps=5)
    assert await provider.list_jobs(since, until, open=False) == ids[:1]
    assert await provider.list_jobs(since, until, open=True) == ids[1:]
    query = emu.requests[-1].query
    assert query["jobIdsOnly"] == "true" and query["open"] == "true"
    assert query["fromTs"] == "2026-03-02T08:59:00.000+00:00"
    for bad in ({"from_ts": until, "to_ts": since}, {"from_ts": until - timedelta(days=31)},
                {"limit": 0}, {"limit": 1001}, {"offset": -1}):
        args = {"from_ts": since, "to_ts": until, **bad}
        with pytest.raises(ValidationError):
            await provider.list_jobs(**args)


@pytest.mark.parametrize(("query", "status"), [
    ({"jobIdsOnly": "true"}, 200), ({"jobIdsOnly": "True"}, 200),  # Retarus' Python SDK
    ({"jobIdsOnly": "TRUE"}, 200), ({}, 200), ({"jobIdsOnly": "false"}, 400),
    ({"jobIdsOnly": "yes"}, 400), ({"jobIdsOnly": "1"}, 400),
    ({"open": "True"}, 200), ({"open": "FALSE"}, 200), ({"open": ""}, 200),
    ({"open": "yes"}, 400), ({"open": "0"}, 400)])
async def test_list_query_booleans_read_like_the_java_service(
        emu: RetarusSmsEmulator, query: dict[str, str], status: int) -> None:
    window = {"fromTs": "2026-03-02T08:00:00.000Z", "toTs": "2026-03-02T10:00:00.000Z"}
    async with httpx.AsyncClient(auth=(USER, PASSWORD)) as client:
        answer = await client.get(f"{emu.base_url}/jobs", params={**window, **query})
    assert answer.status_code == status


@pytest.mark.parametrize("list_format", ["strings", "reports"])
async def test_list_jobs_tolerates_answer_shapes(make: Any, clock: ManualClock,
                                                 list_format: str) -> None:
    async with RetarusSmsEmulator(user=USER, password=PASSWORD, clock=clock,
                                  list_format=list_format) as emulator:
        provider = make(base_url=emulator.base_url, status_urls=[emulator.base_url])
        sub = await provider.submit(batch("+491701234560"))
        assert await provider.list_jobs(START, START + timedelta(hours=1)) == [sub.provider_ref]


async def test_check_reads_version(make: Any, emu: RetarusSmsEmulator) -> None:
    info = await make().check()
    assert info.provider == "retarus" and info.version == "2015.10 (build 39)"
    assert info.details["versionInfo"] == "REST Interface"


# ---- connections and secrets ---------------------------------------------------------------

async def test_one_connection_pool(emu: RetarusSmsEmulator, clock: ManualClock) -> None:
    async with httpx.AsyncClient() as shared:
        options = RetarusSmsProvider.validate_options(
            {"username": USER, "password": PASSWORD, "base_url": emu.base_url,
             "status_urls": [emu.base_url]})
        provider = RetarusSmsProvider("r", options, ProviderContext(clock=clock, http=shared))
        for n in range(4):
            sub = await provider.submit(batch(f"+49170123456{n}"))
            await provider.poll(sub)
        await provider.check()
        assert len({r.peer_port for r in emu.requests}) == 1
        await provider.aclose()
        assert not shared.is_closed


async def test_no_secret_in_logs_or_errors(make: Any, emu: RetarusSmsEmulator,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    provider = make(retry_attempts=2)
    errors: list[Exception] = []
    emu.fail_next(503, count=2)
    for call in (provider.submit(batch("+491701234560")), provider.check()):
        try:
            await call
        except TransientError as err:
            errors.append(err)
    emu.fail_next(502, method="POST")
    await provider.submit(batch("+491701234561", text="x" * 500))
    bad = make(password=PASSWORD + "-typo")
    try:
        await bad.submit(batch("+491701234562"))
    except AuthError as err:
        errors.append(err)
    assert len(errors) == 2 and caplog.records
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    texts = [caplog.text, *(str(e) for e in errors), *(repr(e.args) for e in errors)]
    for text in texts:
        assert PASSWORD not in text and token not in text


# ---- customerRef: at most 64 characters, deterministic, unique --------------------------------

def long_batch(alert_id: str, *numbers: str) -> Batch:
    return Batch(channel=Channel.SMS, items=tuple(
        BatchItem(delivery_id=f"{alert_id}-{index}", alert_id=alert_id, number=number,
                  text="Leak", template="Leak") for index, number in enumerate(numbers)))


async def test_long_ids_become_short_unique_references(make: Any, emu: RetarusSmsEmulator,
                                                       clock: ManualClock) -> None:
    provider = make()
    alert_id = "zabbix:" + "very-long-trigger-name/" * 5  # an idempotency key of 122 chars
    sent = await provider.submit(long_batch(alert_id, "+491701234560", "+491701234561"))
    body = last_body(emu)
    refs = [r["customerRef"] for r in body["messages"][0]["recipients"]]
    assert all(len(ref) <= 64 for ref in [*refs, body["options"]["customerRef"]])
    assert len(set(refs)) == 2  # same 64-character start, still two references
    assert provider.job_request(long_batch(alert_id, "+491701234560", "+491701234561"),
                                clock.now())[0] == body  # deterministic: a resend is identical
    emu.advance(steps=3)
    updates = await provider.poll(sent)
    assert {u.delivery_id: u.state for u in updates} == {
        f"{alert_id}-0": DeliveryState.DELIVERED, f"{alert_id}-1": DeliveryState.FAILED}
    # restart recovery finds the deliveries by their (shortened) references
    found = await provider.find_submitted([SubmittedItem(i.delivery_id, i.number)
                                           for i in sent.items], START - timedelta(minutes=1))
    assert [job.provider_ref for job in found] == [sent.provider_ref]
    assert sorted(i.delivery_id for i in found[0].items) == [f"{alert_id}-0", f"{alert_id}-1"]


async def test_job_reference_of_several_alerts_is_unique(make: Any,
                                                        emu: RetarusSmsEmulator) -> None:
    provider = make()

    def two_alerts(second: str) -> Batch:
        return Batch(channel=Channel.SMS, items=(
            BatchItem("a-0", "a", "+491701234560", "Leak", "Leak"),
            BatchItem(f"{second}-0", second, "+491701234561", "Leak", "Leak")))

    await provider.submit(two_alerts("b"))
    await provider.submit(two_alerts("c"))
    first, second = (r.body["options"]["customerRef"] for r in emu.requests
                     if r.method == "POST")
    assert first != second and first.startswith("a+1~") and len(first) <= 64


# ---- recovery after a crash mid-submission ---------------------------------------------------

async def test_find_submitted_reports_which_deliveries_retarus_already_has(
        make: Any, clock: ManualClock) -> None:
    provider = make()
    sent = await provider.submit(batch("+491701234560", "+491701234561"))
    clock.advance(30)
    received = [SubmittedItem(item.delivery_id, item.number) for item in sent.items]
    never_sent = SubmittedItem("d9-9999", "+491701239999")
    found = await provider.find_submitted([*received, never_sent], START - timedelta(minutes=1))
    assert [job.provider_ref for job in found] == [sent.provider_ref]
    assert sorted(i.delivery_id for i in found[0].items) == sorted(i.delivery_id
                                                                    for i in received)
    follow = await provider.poll(found[0])  # the adopted job is tracked like a fresh one
    assert {u.delivery_id for u in follow} <= {i.delivery_id for i in received}


async def test_find_submitted_needs_recipient_refs(make: Any) -> None:
    provider = make(recipient_refs=False)
    with pytest.raises(NotImplementedError):
        await provider.find_submitted([SubmittedItem("d0", "+491701234560")], START)


async def test_find_submitted_refuses_to_guess_when_too_many_jobs(
        make: Any, clock: ManualClock) -> None:
    provider = make(recovery_lookup_limit=2)
    for index in range(4):
        await provider.submit(batch(f"+49170123456{index}"))
    with pytest.raises(ProviderAnswerError, match="too many"):
        await provider.find_submitted([SubmittedItem("d0-x", "+491701234560")],
                                      START - timedelta(minutes=1))


async def test_find_submitted_reads_every_page_of_the_job_list(
        make: Any, emu: RetarusSmsEmulator, clock: ManualClock) -> None:
    provider = make()
    emu.seed_jobs(1500)  # a busy account: 1,500 jobs since the crash, before ours
    clock.advance(1)
    sent = await provider.submit(batch("+491701234560"))
    clock.advance(30)
    found = await provider.find_submitted(
        [SubmittedItem(i.delivery_id, i.number) for i in sent.items],
        START - timedelta(minutes=1))
    assert [job.provider_ref for job in found] == [sent.provider_ref]
    offsets = [r.query["offset"] for r in emu.requests if r.path.endswith("/jobs")
               and r.method == "GET"]
    assert offsets == ["0", "1000"]  # pages of 1,000, the documented maximum
    assert emu.count("GET", "/sms") == 1501  # stops once every delivery is found


# ---- Unicode: UTF-16 where GSM 03.38 cannot carry the text; parts reported ------------------

@pytest.mark.parametrize(("text", "encoding", "parts"), [
    ("Протечка воды в подвале", "UTF-16", 1),  # Cyrillic
    ("Διαρροή νερού στο υπόγειο", "UTF-16", 1),  # Greek
    ("地下室漏水", "UTF-16", 1),  # CJK
    ("Leak 💧" * 12, "UTF-16", 2),  # emoji: two UTF-16 code units each (84 units)
    ("Wasserschaden: Tür öffnen, Ärger", None, 1),  # umlauts are GSM-7: standard
])
async def test_text_gsm_cannot_carry_goes_as_utf16(make: Any, emu: RetarusSmsEmulator,
                                                    text: str, encoding: str | None,
                                                    parts: int) -> None:
    # the emulated account refuses characters the encoding cannot carry (REFUSE, 422)
    assert emu.default_invalid_characters == "REFUSE"
    sub = await make().submit(batch("+491701234560", "+491701234561", text=text))
    assert last_body(emu)["options"].get("encoding") == encoding
    job = emu.jobs[sub.provider_ref or ""]
    assert job.recipients[0].text == text and job.recipients[0].parts == parts
    assert [item.details["parts"] for item in sub.items] == [parts, parts]


async def test_a_chosen_encoding_is_kept(make: Any, emu: RetarusSmsEmulator) -> None:
    with pytest.raises(RejectedError) as caught:  # STANDARD chosen: the account refuses
        await make(encoding="STANDARD").submit(batch("+491701234560", text="Протечка"))
    assert caught.value.status == 422
    sub = await make(encoding="STANDARD", invalid_characters="TRANSLITERATE").submit(
        batch("+491701234560", text="Протечка"))
    assert last_body(emu)["options"]["encoding"] == "STANDARD"
    assert sub.items[0].details == {"encoding": "GSM-7", "units": 8, "parts": 1}


LONG_RUSSIAN = "Протечка воды в подвале, перекройте кран. " * 6  # 252 UTF-16 units: 4 parts


@pytest.mark.parametrize(("over", "sent_parts", "details"), [
    ("send", 2, {"encoding": "UCS-2", "units": 252, "parts": 4, "max_parts": 2}),
    ("cut", 2, {"encoding": "UCS-2", "units": 134, "parts": 2, "cut_from_parts": 4})])
async def test_max_parts_is_honoured(make: Any, emu: RetarusSmsEmulator, over: str,
                                     sent_parts: int, details: dict[str, Any]) -> None:
    sub = await make(max_parts=2, over_max_parts=over).submit(
        batch("+491701234560", text=LONG_RUSSIAN))
    recipient = emu.jobs[sub.provider_ref or ""].recipients[0]
    assert recipient.parts == sent_parts and last_body(emu)["options"]["maxParts"] == 2
    assert sub.items[0].details == details
    if over == "cut":
        assert recipient.text.endswith("…") and LONG_RUSSIAN.startswith(recipient.text[:-1])


async def test_max_parts_reject_names_the_message(make: Any, emu: RetarusSmsEmulator) -> None:
    with pytest.raises(ValidationError, match="4 SMS parts") as caught:
        await make().submit(batch("+491701234560", text=LONG_RUSSIAN,
                                  options={"maxParts": 3, "over_max_parts": "reject"}))
    assert caught.value.field == "message" and not emu.jobs
