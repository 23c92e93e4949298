"""The web page in a real browser (Debian's Chromium through chromedriver).

An escalating alert goes through the simulator; the link it recorded is opened and Acknowledge
pressed; the report says who acknowledged and the next step is never sent. Then an operator logs
in, finds the alert and its timeline, and cancels another alert. The server is real (aiohttp on a
loopback port); time is a manual clock so the escalation's wait can pass without waiting.
Set ``ALERTLINE_SCREENSHOTS=<dir>`` to keep screenshots of the pages (docs/ has them).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import cast

import pytest
from aiohttp import web
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from alertline.http.web.app import web_for_config
from alertline.http.web.views import WebPages
from tests.engine_harness import EngineHarness, make_config
from tests.http.web.conftest import ALICE, LINK, PASSWORD, web_config
from tests.mosquitto import free_port

pytestmark = pytest.mark.timeout(180)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Headless Chromium; `make test` installs it (a missing browser fails, never skips)."""
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--window-size=420,900",
                 f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
async def served(manual_engine: EngineHarness,
                 tmp_path: Path) -> AsyncIterator[tuple[EngineHarness, WebPages, str, Path]]:
    """The engine and its pages on a real port, ``http.public_url`` pointing at it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    record = tmp_path / "sent.jsonl"
    config = make_config(**web_config(http={"public_url": base}))
    engine = await manual_engine.start(
        config, providers={"sim": manual_engine.simulator(record=str(record))})
    pages, linked = web_for_config(engine, config)
    assert pages is not None and linked is not None
    engine.linked_texts = linked
    app = web.Application()
    app.add_routes(pages.routes())
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield manual_engine, pages, base, record
    finally:
        pages.close()
        await runner.cleanup()


def _await_element(driver: webdriver.Chrome, by: str, value: str) -> WebElement:
    """The element once the page that has it is loaded (a click navigates asynchronously)."""
    found: WebElement = WebDriverWait(driver, 20).until(
        expected_conditions.presence_of_element_located((by, value)))
    return found


def _shot(driver: webdriver.Chrome, name: str) -> None:
    folder = os.environ.get("ALERTLINE_SCREENSHOTS")
    if folder:
        driver.save_screenshot(str(Path(folder) / name))


async def test_acknowledge_from_the_sms_link_then_operate_the_dashboard(
        served: tuple[EngineHarness, WebPages, str, Path], browser: webdriver.Chrome) -> None:
    harness, _pages, base, record = served
    engine = harness.engines[-1]
    alert = await harness.send(engine, route="leak", title="Basement",
                               message="Water leak in the basement")
    texts = [line for line in record.read_text().splitlines() if ALICE in line]
    link = LINK.pattern.replace(r"https://alerts\.example\.com", base)
    url = re.search(link, texts[0])
    assert url is not None
    ack_url = url.group(0)

    async def run(fn: object, *args: object) -> object:
        return await asyncio.to_thread(fn, *args)  # type: ignore[arg-type]

    await run(browser.get, ack_url)
    body = await run(browser.find_element, By.TAG_NAME, "body")
    assert "Water leak in the basement" in body.text  # type: ignore[attr-defined]
    assert ALICE not in body.text  # type: ignore[attr-defined]
    _shot(browser, "ack-page.png")
    button = await run(browser.find_element, By.ID, "ack")
    await run(button.click)  # type: ignore[attr-defined]
    outcome = await run(_await_element, browser, By.ID, "outcome")
    assert "Acknowledged by alice" in outcome.text  # type: ignore[attr-defined]
    report = await engine.report(alert.alert_id)
    assert report.status.acknowledged is not None
    assert report.status.acknowledged.by == "alice"
    await harness.advance(engine, 15 * 60)
    sent = [json.loads(line) for line in record.read_text().splitlines()]
    assert [m["number"] for m in sent if m["alert_id"] == alert.alert_id] == [ALICE]
    other = await harness.send(engine, route="leak", message="Front door open")

    await run(browser.get, f"{base}/login")
    for field, value in (("user", "ops"), ("password", PASSWORD)):
        box = await run(browser.find_element, By.ID, field)
        await run(box.send_keys, value)  # type: ignore[attr-defined]
    await run((await run(browser.find_element, By.ID, "login")).click)  # type: ignore[attr-defined]
    await run(_await_element, browser, By.LINK_TEXT, "Basement")
    _shot(browser, "dashboard.png")
    await run((await run(browser.find_element, By.LINK_TEXT, "Basement")).click)  # type: ignore[attr-defined]
    timeline = await run(_await_element, browser, By.ID, "timeline")
    assert "submitted" in timeline.text and "ack" in timeline.text  # type: ignore[attr-defined]
    _shot(browser, "alert.png")

    await run(browser.get, f"{base}/alerts/{other.alert_id}")
    cancel = cast(WebElement, await run(browser.find_element, By.ID, "cancel"))
    await run(cancel.click)
    await run(WebDriverWait(browser, 20).until, expected_conditions.staleness_of(cancel))
    body = await run(_await_element, browser, By.TAG_NAME, "body")
    assert "Cancel" not in body.text  # type: ignore[attr-defined]  # nothing left to cancel
    assert (await engine.report(other.alert_id)).status.cancelled
