"""Tests of the Retarus SMS HTTP Simple adapter against its emulator, over real HTTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import voluptuous as vol

from alertline.clock import ManualClock
from alertline.errors import (
    AuthError,
    ProviderAnswerError,
    RateLimitedError,
    RejectedError,
    TransientError,
    ValidationError,
)
from alertline.model import Channel, DeliveryState, Priority
from alertline.providers.base import Batch, BatchItem, ProviderContext, Submission, SubmittedItem
from alertline.providers.registry import adapter_class
from alertline.providers.retarus.sms_http import (
    DEFAULT_BASE_URL,
    DEFAULT_CHECK_JOB_ID,
    NOT_FOUND_REASON,
    RetarusSmsHttpProvider,
)
from alertline.providers.retarus.sms_http_wire import parse_job_id, parse_report
from alertline.redact import Redactor
from tests.emulators.retarus_sms_http import RetarusSmsHttpEmulator

USER = "acme-login"
PASSWORD = "s3cr3t-Pa55word"
NUMBER = "+491701234560"

Factory = Callable[..., RetarusSmsHttpProvider]


@pytest.fixture
async def emu(clock: ManualClock) -> AsyncIterator[RetarusSmsHttpEmulator]:
    async with RetarusSmsHttpEmulator(user=USER, password=PASSWORD, clock=clock) as emulator:
        yield emulator


@pytest.fixture
def make(emu: RetarusSmsHttpEmulator, clock: ManualClock, http: httpx.AsyncClient) -> Factory:
    def factory(target: RetarusSmsHttpEmulator | None = None, **options: Any
                ) -> RetarusSmsHttpProvider:
        settings = {"username": USER, "password": PASSWORD,
                    "base_url": (target or emu).base_url, **options}
        context = ProviderContext(clock=clock, http=http, redactor=Redactor())
        return RetarusSmsHttpProvider("retarus_http", settings, context)
    return factory


def batch(number: str = NUMBER, text: str = "Water leak in the basement", **kwargs: Any) -> Batch:
    item = BatchItem(delivery_id="d-1", alert_id=kwargs.pop("alert_id", "alert-1"),
                     number=number, text=text, template=text)
    return Batch(channel=kwargs.pop("channel", Channel.SMS), items=(item,), **kwargs)


async def sent_params(make: Factory, emu: RetarusSmsHttpEmulator, the_batch: Batch | None = None,
                      **options: Any) -> dict[str, str]:
    await make(**options).submit(the_batch or batch())
    return emu.requests[-1].params


# --- submit: request shape and every option --------------------------------------------------

async def test_submit_posts_form_body_and_returns_job(make: Factory,
                                                      emu: RetarusSmsHttpEmulator) -> None:
    submission = await make().submit(batch())
    assert submission.provider_ref in emu.jobs
    assert submission.items[0].provider_message_id == submission.provider_ref
    assert submission.items[0].state is DeliveryState.SUBMITTED
    assert submission.data == {"job_id": submission.provider_ref, "delivery_notification": False}
    received = emu.requests[-1]
    assert (received.method, received.path, received.body_kind) == ("POST", "/sms", "urlencoded")
    assert received.query == {}  # credentials stay out of the URL by default
    assert received.body == {"user": USER, "pass": PASSWORD, "dst": NUMBER,
                             "msg": "Water leak in the basement", "qos": "normal",
                             "dn": "false", "ref": "alert-1"}


@pytest.mark.parametrize(("style", "kind", "in_query"), [
    ("form", "urlencoded", False), ("multipart", "multipart", False), ("query", "none", True)])
async def test_param_styles(make: Factory, emu: RetarusSmsHttpEmulator, style: str, kind: str,
                            in_query: bool) -> None:
    await make(param_style=style).submit(batch(text="Wasser im Keller: 5 cm, Pumpe läuft"))
    received = emu.requests[-1]
    assert received.body_kind == kind
    assert ("pass" in received.query) is in_query
    assert received.params["msg"] == "Wasser im Keller: 5 cm, Pumpe läuft"
    assert received.params["user"] == USER


@pytest.mark.parametrize(("options", "expected"), [
    ({"sender": "ACME Alarm"}, {"src": "ACME Alarm"}),
    ({"sender": "+4989123456"}, {"src": "+4989123456"}),
    ({"billcode": "cost-center-7"}, {"bc": "cost-center-7"}),
    ({"reference": "leak-sensor-3"}, {"ref": "leak-sensor-3"}),
    ({"qos": "EXPRESS"}, {"qos": "express"}),
    ({"delivery_notification": True}, {"dn": "true"}),
    ({"delivery_notification": True, "dn_values": "on/off"}, {"dn": "on"}),
    ({"dn_values": "yes/no"}, {"dn": "no"}),
    ({"delivery_notification": True, "dn_values": "1/0"}, {"dn": "1"}),
    ({"number_format": "digits"}, {"dst": "491701234560"}),
])
async def test_options_reach_the_wire(make: Factory, emu: RetarusSmsHttpEmulator,
                                      options: dict[str, Any], expected: dict[str, str]) -> None:
    params = await sent_params(make, emu, **options)
    assert {key: params.get(key) for key in expected} == expected


async def test_reference_alert_id_can_be_switched_off(make: Factory,
                                                      emu: RetarusSmsHttpEmulator) -> None:
    assert "ref" not in await sent_params(make, emu, reference_alert_id=False)


async def test_alert_id_too_long_for_ref_is_shortened_with_a_hash(
        make: Factory, emu: RetarusSmsHttpEmulator) -> None:
    first = (await sent_params(make, emu, batch(alert_id="ä" * 71)))["ref"]
    other = (await sent_params(make, emu, batch(alert_id="ä" * 72)))["ref"]
    again = (await sent_params(make, emu, batch(alert_id="ä" * 71)))["ref"]
    assert len(first) == 70 and first.startswith("ä" * 53 + "~")
    assert first == again and first != other  # deterministic and unique


@pytest.mark.parametrize(("priority", "options", "qos"), [
    (Priority.HIGH, {}, "express"),
    (Priority.HIGH, {"express_for_high_priority": False}, "normal"),
    (Priority.NORMAL, {}, "normal"),
    (Priority.NORMAL, {"qos": "express"}, "express"),
])
async def test_qos_follows_priority(make: Factory, emu: RetarusSmsHttpEmulator,
                                    priority: Priority, options: dict[str, Any], qos: str) -> None:
    params = await sent_params(make, emu, batch(priority=priority), **options)
    assert params["qos"] == qos


async def test_alert_options_override_provider_options(make: Factory,
                                                       emu: RetarusSmsHttpEmulator) -> None:
    alert = batch(sender="Override", options={"qos": "express", "delivery_notification": True,
                                              "billcode": "bc-alert", "reference": "ref-alert"})
    params = await sent_params(make, emu, alert, sender="Default", billcode="bc-default",
                               reference="ref-default")
    assert {k: params[k] for k in ("src", "qos", "dn", "bc", "ref")} == {
        "src": "Override", "qos": "express", "dn": "true", "bc": "bc-alert", "ref": "ref-alert"}


@pytest.mark.parametrize(("options", "field"), [
    ({"qos": "urgent"}, "options.qos"),
    ({"billcode": "x" * 71}, "options.billcode"),
    ({"reference": "ü" * 71}, "options.reference"),
    ({"flash": True}, "options.flash"),
])
async def test_invalid_alert_options_are_rejected(make: Factory, options: dict[str, Any],
                                                  field: str) -> None:
    with pytest.raises(ValidationError) as err:
        await make().submit(batch(options=options))
    assert err.value.field == field


@pytest.mark.parametrize("sender", ["ACME-Alarm-Co", "+123456789012345678901", "Käse", ""])
async def test_invalid_sender_is_refused_before_sending(make: Factory, emu: RetarusSmsHttpEmulator,
                                                        sender: str) -> None:
    with pytest.raises((ValidationError, vol.Invalid)):
        RetarusSmsHttpProvider.validate_options(
            {"username": USER, "password": PASSWORD, "sender": sender})
    if sender:
        with pytest.raises(ValidationError) as err:
            await make().submit(batch(sender=sender))
        assert err.value.field == "sender"
    assert emu.requests == []


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"text": "   "}, "message"),
    ({"channel": Channel.VOICE}, "channel"),
])
async def test_unsendable_batches(make: Factory, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        await make().submit(batch(**kwargs))
    assert err.value.field == field


async def test_one_destination_per_request(make: Factory) -> None:
    items = tuple(BatchItem(f"d-{n}", "a", f"+49170123456{n}", "t", "t") for n in range(2))
    with pytest.raises(ValidationError, match="one destination"):
        await make().submit(Batch(channel=Channel.SMS, items=items))


def test_options_schema_defaults_and_capabilities(make: Factory) -> None:
    options = RetarusSmsHttpProvider.validate_options({"username": USER, "password": PASSWORD})
    assert options["base_url"] == DEFAULT_BASE_URL == "https://sms4a.retarus.com/httpsimple/v1"
    assert (options["qos"], options["param_style"], options["dn_values"]) == (
        "normal", "form", "true/false")
    assert options["delivery_notification"] is False
    for marker in RetarusSmsHttpProvider.options_schema:
        assert marker.description
    provider = make(poll_interval=5, deadline=3600, number_format="digits")
    caps = provider.capabilities
    assert (caps.max_recipients, caps.poll_interval, caps.tracking_deadline) == (1, 5.0, 3600.0)
    assert caps.channels == frozenset({Channel.SMS})
    assert caps.number_format.value == "digits"
    assert adapter_class("retarus_sms_http") is RetarusSmsHttpProvider
    with pytest.raises(vol.Invalid):
        RetarusSmsHttpProvider.validate_options({"username": USER})
    with pytest.raises(vol.Invalid):
        RetarusSmsHttpProvider.validate_options(
            {"username": USER, "password": PASSWORD, "param_style": "json"})


# --- status: every row of the seed's table ----------------------------------------------------

STATUS_ROWS = [
    ("OPEN", "", DeliveryState.SUBMITTED),
    ("OPEN", "CON_ERR", DeliveryState.SUBMITTED),
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
    ("CANCELED", "", DeliveryState.CANCELLED),
    ("CANCELED", "NOT_ACC_REC", DeliveryState.CANCELLED),
    ("RUNNING", "SUC_ACC", DeliveryState.SUBMITTED),
    ("KILL", "SUC_ACC", DeliveryState.SENT),  # "SMS was sent, but cancelled ..."
]


@pytest.mark.parametrize("answer_format", ["text", "json"])
@pytest.mark.parametrize(("process", "status", "state"), STATUS_ROWS)
async def test_every_status_row(make: Factory, emu: RetarusSmsHttpEmulator, answer_format: str,
                                process: str, status: str, state: DeliveryState) -> None:
    emu.answer_format = answer_format
    provider = make()
    submission = await provider.submit(batch())
    emu.set_status(submission.provider_ref or "", process, status)
    [update] = await provider.poll(submission)
    assert update.state is state
    assert update.provider_status == f"{process} {status}".strip()
    assert update.details["process_status"] == process
    assert update.reason
    assert (update.delivery_id, update.provider_ref) == ("d-1", submission.provider_ref)
    received = emu.requests[-1]
    assert (received.method, received.path) == ("GET", "/reports")
    assert received.query == {"jobid": submission.provider_ref, "user": USER, "pass": PASSWORD}


@pytest.mark.parametrize(("digit", "dn", "expected"), [
    ("0", False, ["OPEN", "DONE SUC_ACC"]),
    ("0", True, ["OPEN", "RUNNING SUC_ACC", "DONE SUC_FIN"]),
    ("1", False, ["OPEN", "DONE INVALID_DST"]),
    ("2", False, ["OPEN", "DONE BLOCKED"]),
    ("3", True, ["OPEN", "RUNNING SUC_ACC", "DONE TIMEOUT"]),
    ("4", False, ["OPEN", "OPEN CON_ERR", "DONE CON_ERR"]),
    ("5", True, ["OPEN", "RUNNING SUC_ACC", "DONE FAILED_FIN"]),
    ("5", False, ["OPEN", "DONE SUC_ACC"]),
    ("6", False, ["OPEN", "OPEN CON_ERR", "DONE NOT_ACC_FIN"]),
    ("7", False, ["OPEN", "DONE SEND_ERR"]),
    ("8", True, ["OPEN", "RUNNING SUC_ACC", "DONE STATUS_ERR"]),
    ("9", True, ["OPEN", "OPEN", "OPEN"]),
])
async def test_jobs_progress_by_last_digit(make: Factory, clock: ManualClock, digit: str,
                                           dn: bool, expected: list[str]) -> None:
    provider = make(delivery_notification=dn)
    submission = await provider.submit(batch(number=f"+49170123456{digit}"))
    seen = []
    for _ in expected:
        [update] = await provider.poll(submission)
        seen.append(update.provider_status)
        clock.advance(1.0)
    assert seen == expected
    assert update.state.final is (digit != "9")


@pytest.mark.parametrize(("steps", "expected", "state"), [
    (0, "CANCELED", DeliveryState.CANCELLED),
    (1, "KILL SUC_ACC", DeliveryState.SENT)])  # cancelled after it was sent: it was sent
async def test_cancelled_jobs(make: Factory, emu: RetarusSmsHttpEmulator, steps: int,
                              expected: str, state: DeliveryState) -> None:
    emu.step_seconds = None  # only advance() moves jobs
    provider = make(delivery_notification=True)
    submission = await provider.submit(batch())
    emu.advance(submission.provider_ref, steps)
    assert emu.cancel(submission.provider_ref or "")
    [update] = await provider.poll(submission)
    assert (update.state, update.provider_status) == (state, expected)


def test_running_at_the_tracking_deadline_is_sent(make: Factory) -> None:
    state, reason = make().state_at_deadline("RUNNING SUC_ACC") or (None, "")
    assert state is DeliveryState.SENT and "no delivery notification" in reason
    assert make().state_at_deadline("OPEN CON_ERR") is None


async def test_final_items_are_not_polled(make: Factory, emu: RetarusSmsHttpEmulator) -> None:
    done = SubmittedItem("d-1", NUMBER, "J.x", state=DeliveryState.DELIVERED)
    submission = Submission("J.x", (done,), submitted_at=ManualClock().now())
    assert await make().poll(submission) == []
    assert emu.requests == []


@pytest.mark.parametrize(("status", "body"), [(404, "unknown job"), (200, "Job unknown")])
async def test_unknown_job_stays_open(make: Factory, emu: RetarusSmsHttpEmulator, status: int,
                                      body: str) -> None:
    emu.unknown_job_status, emu.unknown_job_body = status, body
    item = SubmittedItem("d-1", NUMBER, "J.20260101-120000.000-0lemu9999999999999")
    submission = Submission(item.provider_message_id, (item,), submitted_at=ManualClock().now())
    [update] = await make().poll(submission)
    assert (update.state, update.reason) == (DeliveryState.SUBMITTED, NOT_FOUND_REASON)
    assert update.details == {"found": False}


async def test_unreadable_answers(make: Factory, emu: RetarusSmsHttpEmulator) -> None:
    provider = make()
    emu.fail_next(201, path="/sms", body="<html>maintenance</html>")
    with pytest.raises(ProviderAnswerError, match="no job id"):
        await provider.submit(batch())
    submission = await provider.submit(batch())
    emu.fail_next(200, path="/reports", body="<html>maintenance</html>")
    with pytest.raises(ProviderAnswerError, match="unreadable answer"):
        await provider.poll(submission)


# --- tolerant parsing of the undocumented answer bodies ----------------------------------------

@pytest.mark.parametrize(("body", "job_id"), [
    ("J.20221116-102407.583-0lajfsfmoXIZJO93PQ\n", "J.20221116-102407.583-0lajfsfmoXIZJO93PQ"),
    ('{"jobId": "J.1-2"}', "J.1-2"),
    ('{"JobID": 12345}', "12345"),
    ('[{"jobid": "abc"}]', "abc"),
    ('"J.quoted-123"', "J.quoted-123"),
    ("OK jobid=4711", "4711"),
    ("Job J.20221116-102407.583-0lajfsfmoXIZJO93PQ accepted",
     "J.20221116-102407.583-0lajfsfmoXIZJO93PQ"),
    ("12345", "12345"),
])
def test_parse_job_id(body: str, job_id: str) -> None:
    assert parse_job_id("p", body, str) == job_id


@pytest.mark.parametrize("body", ["", "   ", "{}", "two words", '{"jobId": ""}'])
def test_parse_job_id_refuses(body: str) -> None:
    with pytest.raises(ProviderAnswerError):
        parse_job_id("p", body, str)


@pytest.mark.parametrize(("body", "process", "status"), [
    ("DONE SUC_FIN", "DONE", "SUC_FIN"),
    ("OPEN\n", "OPEN", ""),
    ("done;suc_acc", "DONE", "SUC_ACC"),
    ("ProcessStatus=DONE;Status=INVALID_DST", "DONE", "INVALID_DST"),
    ("processStatus: OPEN, status:", "OPEN", ""),
    ("J.1-2 RUNNING SUC_ACC", "RUNNING", "SUC_ACC"),
    ('{"processStatus": "done", "status": "blocked", "reason": "carrier"}', "DONE", "BLOCKED"),
    ('[{"processStatus": "CANCELED", "status": null}]', "CANCELED", None),
    ("SUC_FIN", None, "SUC_FIN"),
])
def test_parse_report(body: str, process: str | None, status: str | None) -> None:
    report = parse_report("p", body, str)
    assert report is not None
    assert (report.process_status, report.status) == (process, status)


def test_parse_report_unknown_and_garbage() -> None:
    assert parse_report("p", "No such job", str) is None
    assert parse_report("p", '{"message": "job not found"}', str) is None
    with pytest.raises(ProviderAnswerError, match="XXXX"):
        parse_report("p", "pass=hunter2 weird", lambda text: text.replace("hunter2", "XXXX"))


# --- errors, retries and rate limits -----------------------------------------------------------

@pytest.mark.parametrize(("bodies", "message"), [
    (False, "One or more parameters are invalid"), (True, "invalid dst")])
async def test_400_is_rejected_with_the_reason(make: Factory, emu: RetarusSmsHttpEmulator,
                                               bodies: bool, message: str) -> None:
    emu.error_bodies = bodies
    with pytest.raises(RejectedError, match=message) as err:
        await make().submit(batch(number="+12"))
    assert err.value.status == 400
    assert len(emu.requests) == 1


async def test_wrong_password_is_an_auth_error_never_retried(make: Factory,
                                                             emu: RetarusSmsHttpEmulator) -> None:
    with pytest.raises(AuthError, match="Authentication information is missing or invalid"):
        await make(password="wrong-password").submit(batch())
    assert len(emu.requests) == 1


@pytest.mark.parametrize(("status", "error", "reason"), [
    (405, RejectedError, "method used is not allowed"),
    (404, RejectedError, "HTTP 404"),
    (500, TransientError, "Internal Server Error"),
    (503, TransientError, "HTTP 503"),
])
async def test_status_codes_map_to_typed_errors(make: Factory, emu: RetarusSmsHttpEmulator,
                                                status: int, error: type[Exception],
                                                reason: str) -> None:
    emu.fail_next(status, count=10)
    with pytest.raises(error, match=reason):
        await make(retry_attempts=3).submit(batch())
    # a 503 is retried once only: the dispatcher then pauses the provider
    assert len(emu.requests) == {500: 3, 503: 2}.get(status, 1)


async def test_5xx_is_retried_with_backoff(make: Factory, emu: RetarusSmsHttpEmulator,
                                           clock: ManualClock) -> None:
    emu.fail_next(500, count=2)
    submission = await make(retry_base_delay=1.0).submit(batch())
    assert submission.provider_ref in emu.jobs
    assert len(clock.slept) == 2
    assert 0.8 <= clock.slept[0] <= 1.2 and 1.6 <= clock.slept[1] <= 2.4


async def test_rate_limit_counts_jobs_and_answers_429_without_content(
        make: Factory, emu: RetarusSmsHttpEmulator, clock: ManualClock) -> None:
    emu.rate_limit = 2  # N alone: the documented 10-second window
    provider = make(retry_attempts=1)
    first = await provider.submit(batch())
    await provider.submit(batch())
    for _ in range(3):
        await provider.poll(first)  # reports are not jobs: never limited
    with pytest.raises(RateLimitedError) as caught:
        await provider.submit(batch())
    assert caught.value.retry_after is None  # no Retry-After unless switched on
    refused = await _raw_post(emu)
    assert (refused.status_code, refused.content) == (429, b"")
    assert emu.rejected_429 == 2 and len(emu.jobs) == 2
    emu.rate_limit_retry_after = True
    clock.advance(4.0)
    with pytest.raises(RateLimitedError) as caught:
        await provider.submit(batch())
    assert caught.value.retry_after == 6.0
    clock.advance(6.0)
    await provider.submit(batch())
    assert len(emu.jobs) == 3 and emu.rejected_429 == 3


async def _raw_post(emu: RetarusSmsHttpEmulator) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(f"{emu.base_url}/sms", data={
            "user": USER, "pass": PASSWORD, "dst": "+491701234560", "msg": "x"})


async def test_429_is_not_repeated(make: Factory, emu: RetarusSmsHttpEmulator,
                                   clock: ManualClock) -> None:
    emu.fail_next(429, count=5, retry_after=3)
    with pytest.raises(RateLimitedError) as err:
        await make(retry_attempts=3).check()
    assert err.value.retry_after == 3.0
    assert clock.slept == [] and len(emu.requests) == 1


async def test_slow_report_is_retried_but_slow_send_is_not(make: Factory,
                                                           emu: RetarusSmsHttpEmulator) -> None:
    provider = make(timeout=0.05)
    emu.slow_next(30)
    info = await provider.check()  # GET: safe to repeat
    assert info.details["http_status"] == 404
    assert len(emu.requests) == 2
    emu.slow_next(30)
    with pytest.raises(TransientError, match="timed out"):
        await provider.submit(batch())  # POST: the provider may have acted, no repeat
    assert len(emu.requests) == 3


async def test_unreachable_host_is_transient(emu: RetarusSmsHttpEmulator, clock: ManualClock,
                                             http: httpx.AsyncClient) -> None:
    async with RetarusSmsHttpEmulator(user=USER, password=PASSWORD) as gone:
        url = gone.base_url
    provider = RetarusSmsHttpProvider(
        "r", {"username": USER, "password": PASSWORD, "base_url": url, "retry_attempts": 2},
        ProviderContext(clock=clock, http=http))
    with pytest.raises(TransientError, match="cannot connect"):
        await provider.check()
    assert len(clock.slept) == 1


# --- check() ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "body"), [(404, "unknown job"), (400, ""), (200, "unknown")])
async def test_check_accepts_valid_credentials(make: Factory, emu: RetarusSmsHttpEmulator,
                                               status: int, body: str) -> None:
    emu.unknown_job_status, emu.unknown_job_body = status, body
    info = await make().check()
    assert info.provider == "retarus_http"
    assert info.version is None
    assert info.details["http_status"] == status
    assert emu.requests[-1].query == {"jobid": DEFAULT_CHECK_JOB_ID, "user": USER,
                                      "pass": PASSWORD}


async def test_check_with_bad_credentials(make: Factory) -> None:
    with pytest.raises(AuthError):
        await make(username="someone-else").check()


async def test_check_job_id_is_configurable(make: Factory, emu: RetarusSmsHttpEmulator) -> None:
    await make(check_job_id="J.probe").check()
    assert emu.requests[-1].query["jobid"] == "J.probe"


async def test_own_client_is_closed(emu: RetarusSmsHttpEmulator, clock: ManualClock) -> None:
    provider = RetarusSmsHttpProvider(
        "r", {"username": USER, "password": PASSWORD, "base_url": emu.base_url},
        ProviderContext(clock=clock))
    submission = await provider.submit(batch())
    assert submission.provider_ref in emu.jobs
    await provider.aclose()


# --- secrets -----------------------------------------------------------------------------------

async def test_credentials_never_logged_or_raised(make: Factory, emu: RetarusSmsHttpEmulator,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # configure_logging (a CLI test) quiets it
    emu.error_bodies = True
    provider = make(param_style="query")
    submission = await provider.submit(batch())
    await provider.poll(submission)
    await provider.check()
    errors: list[Exception] = []
    emu.fail_next(400, path="/sms", body=f"bad login {USER}/{PASSWORD}")
    emu.fail_next(500, count=4, path="/reports", body=f"pass={PASSWORD}")
    emu.fail_next(200, path="/reports", body=f"{USER} {PASSWORD} ???")
    for call in (provider.submit(batch()), provider.poll(submission), provider.poll(submission),
                 make(password="wrong-" + PASSWORD).check()):
        with pytest.raises((RejectedError, TransientError, ProviderAnswerError, AuthError)) as err:
            await call
        errors.append(err.value)
    texts = [str(e) for e in errors] + [r.getMessage() for r in caplog.records]
    assert any("pass=**REDACTED**" in r.getMessage() for r in caplog.records
               if r.name == "httpx")
    for text in texts:
        assert PASSWORD not in text
        assert USER not in text


# --- Unicode and parts (the interface has no encoding parameter) -------------------------------

@pytest.mark.parametrize(("text", "encoding", "parts"), [
    ("Протечка воды в подвале", "UCS-2", 1), ("Leak 💧" * 12, "UCS-2", 2),
    ("Wasserschaden: Tür öffnen", "GSM-7", 1), ("x" * 161, "GSM-7", 2)])
async def test_parts_are_counted_and_reported(make: Factory, emu: RetarusSmsHttpEmulator,
                                              text: str, encoding: str, parts: int) -> None:
    submission = await make().submit(batch(text=text))
    assert emu.requests[-1].params["msg"] == text  # sent as it is
    assert submission.items[0].details["encoding"] == encoding
    assert submission.items[0].details["parts"] == parts
    assert emu.jobs[submission.provider_ref or ""].parts == parts


async def test_max_parts_cut_or_reject(make: Factory, emu: RetarusSmsHttpEmulator) -> None:
    text = "Протечка воды в подвале, перекройте кран. " * 6  # 4 parts in UCS-2
    cut = await make(max_parts=2, over_max_parts="cut").submit(batch(text=text))
    sent = emu.requests[-1].params["msg"]
    assert sent.endswith("…") and emu.jobs[cut.provider_ref or ""].parts == 2
    assert cut.items[0].details["cut_from_parts"] == 4
    with pytest.raises(ValidationError) as caught:
        await make(max_parts=2, over_max_parts="reject").submit(batch(text=text))
    assert caught.value.field == "message" and len(emu.jobs) == 1


async def test_an_account_refusing_unicode_is_a_rejection(make: Factory,
                                                          emu: RetarusSmsHttpEmulator) -> None:
    emu.refuse_non_gsm = True
    with pytest.raises(RejectedError):
        await make().submit(batch(text="Протечка"))
    assert not emu.jobs
