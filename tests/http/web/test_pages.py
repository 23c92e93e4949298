"""The web page end to end over HTTP: links acknowledge, the dashboard shows and acts, safely."""

from __future__ import annotations

from alertline.config.sections import validate_config
from alertline.http.web.app import web_for_config
from tests.engine_harness import EngineHarness, make_config
from tests.http.web.conftest import (
    ALICE,
    BOB,
    PASSWORD,
    PASSWORD_HASH,
    WEB_SECRET,
    WebSite,
    csrf_of,
    web_config,
)


async def test_the_link_in_the_sms_acknowledges_and_stops_the_escalation(site: WebSite) -> None:
    accepted = await site.harness.send(site.engine, route="leak", message="Water leak")
    token = site.link_token(ALICE)
    sms = [m["text"] for m in site.sent() if m["number"] == ALICE][-1]
    assert sms.startswith("Water leak https://alerts.example.com/a/")
    assert len(sms) <= 160

    page = await site.client.get(f"/a/{token}")
    html = await page.text()
    assert page.status == 200
    assert "Water leak" in html and "Acknowledge" in html
    assert ALICE not in html and "+49 ••• ••• 60" in html  # unauthenticated: the number masked
    assert page.headers["Referrer-Policy"] == "no-referrer"
    report = await site.engine.report(accepted.alert_id)
    assert report.status.acknowledged is None  # opening the link (a preview bot) does nothing

    forged = await site.client.post(f"/a/{token}", data={"action": "ack", "csrf": "x"})
    assert forged.status == 403
    assert (await site.engine.report(accepted.alert_id)).status.acknowledged is None

    done = await site.client.post(f"/a/{token}", data={"action": "ack", "csrf": csrf_of(html)})
    assert done.status == 200 and "Acknowledged by alice" in await done.text()
    report = await site.engine.report(accepted.alert_id)
    assert report.status.acknowledged is not None
    assert (report.status.acknowledged.by, report.status.acknowledged.via) == ("alice", "link")

    await site.harness.advance(site.engine, 15 * 60)
    assert [m for m in site.sent() if m["number"] == BOB] == []  # no further step was sent


async def test_resolve_from_a_link_only_where_allowed(site: WebSite) -> None:
    await site.harness.send(site.engine, route="leak", message="Smoke")
    token = site.link_token(ALICE)
    html = await (await site.client.get(f"/a/{token}")).text()
    assert "Resolve" not in html
    refused = await site.client.post(f"/a/{token}", data={"action": "resolve",
                                                          "csrf": csrf_of(html)})
    assert refused.status == 403


async def test_guessed_tokens_are_refused_then_rate_limited(site: WebSite) -> None:
    statuses = [(await site.client.get(f"/a/AAAAAAAAAAAAAAAAAAAAAAAAAAA{i}")).status
                for i in range(site.pages.settings.link_attempts + 1)]
    assert statuses[:-1] == [404] * site.pages.settings.link_attempts
    assert statuses[-1] == 429


async def test_login_dashboard_timeline_and_cancel(site: WebSite) -> None:
    first = await site.harness.send(site.engine, route="leak", message="Water leak")
    other = await site.harness.send(site.engine, route="leak", message="Door open")
    anonymous = await site.client.get("/", allow_redirects=False)
    assert anonymous.status == 303 and anonymous.headers["Location"] == "/login"

    await site.login()
    cookie = next(c for c in site.client.session.cookie_jar if c.key == "alertline_session")
    assert cookie["httponly"] and cookie["samesite"] == "Strict"

    dashboard = await (await site.client.get("/")).text()
    assert "Water leak" in dashboard and "Door open" in dashboard
    assert '<script src="/static/app.js">' in dashboard  # live updates
    assert PASSWORD_HASH not in dashboard and WEB_SECRET not in dashboard

    story = await (await site.client.get(f"/alerts/{first.alert_id}")).text()
    assert "Timeline" in story and "submitted" in story and "sim" in story

    page = await (await site.client.get(f"/alerts/{other.alert_id}")).text()
    forged = await site.client.post(f"/alerts/{other.alert_id}/cancel", data={"csrf": "no"})
    assert forged.status == 403
    cancelled = await site.client.post(f"/alerts/{other.alert_id}/cancel",
                                       data={"csrf": csrf_of(page)})
    assert cancelled.status == 200
    report = await site.engine.report(other.alert_id)
    assert report.status.cancelled
    assert (await site.engine.report(first.alert_id)).status.cancelled is False


async def test_wrong_passwords_are_refused_then_rate_limited(site: WebSite) -> None:
    csrf = csrf_of(await (await site.client.get("/login")).text())
    statuses = []
    for _ in range(site.pages.settings.login_attempts + 1):
        answer = await site.client.post("/login", data={"user": "ops", "password": "wrong",
                                                        "csrf": csrf}, allow_redirects=False)
        statuses.append(answer.status)
    assert statuses == [401] * site.pages.settings.login_attempts + [429]
    right = await site.client.post("/login", data={"user": "ops", "password": PASSWORD,
                                                   "csrf": csrf}, allow_redirects=False)
    assert right.status == 429  # locked out for the window even with the right password
    missing_csrf = await site.client.post("/login", data={"user": "ops", "password": PASSWORD})
    assert missing_csrf.status in (403, 429)


async def test_the_web_is_off_unless_http_is_on_and_something_needs_it(
        manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start(make_config())
    assert web_for_config(engine, make_config()) == (None, None)
    off = make_config(**{**web_config(), "http": {"enabled": False,
                                                  "public_url": "https://a.example"}})
    assert web_for_config(engine, off) == (None, None)


def test_the_issue_configuration_validates_and_hides_the_hash() -> None:
    config = validate_config({**web_config(), "providers": {
        "sim": {"type": "simulator", "record": "/tmp/sent.jsonl"}}}, {})
    assert config.routes["leak"].name == "leak"
    assert WEB_SECRET in config.secrets and PASSWORD_HASH in config.secrets
    bad = {**web_config(), "web": {"users": {"ops": {"password_hash": "hunter2"}}}}
    try:
        validate_config(bad, {})
    except Exception as err:
        assert "web.users.ops.password_hash" in str(err)
        assert "hash-password" in str(err)
    else:
        raise AssertionError("a plain-text password was accepted")
