"""A web page around an engine on a manual clock, served on a loopback port."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from alertline.engine.core import Engine
from alertline.http.web.app import web_for_config
from alertline.http.web.passwords import hash_password
from alertline.http.web.views import WebPages
from tests.engine_harness import EngineHarness, make_config

PASSWORD = "correct horse battery"
PASSWORD_HASH = hash_password(PASSWORD)
WEB_SECRET = "web-secret-0123456789abcdef"
ALICE, BOB = "+491701234560", "+491701234561"
LINK = re.compile(r"https://alerts\.example\.com/a/([A-Za-z0-9_-]+)")


def web_config(**extra: Any) -> dict[str, Any]:
    """The issue's configuration: a leak route with links and an escalation to bob."""
    return {
        "http": {"public_url": "https://alerts.example.com"},
        "web": {"users": {"ops": {"password_hash": PASSWORD_HASH}}, "secret": WEB_SECRET},
        "contacts": {"alice": {"phone": ALICE}, "bob": {"phone": BOB}},
        "routes": {"leak": {"to": ["alice"], "channel": "sms", "ack_link": True,
                            "escalation": "page"}},
        "escalations": {"page": {"steps": [{"to": ["alice"], "channel": "sms", "wait": "5m"},
                                           {"to": ["bob"], "channel": "sms", "wait": "5m"}]}},
        **extra,
    }


@dataclass
class WebSite:
    """The engine, its pages, an HTTP client, and what the simulator recorded."""

    harness: EngineHarness
    engine: Engine
    pages: WebPages
    client: TestClient[web.Request, web.Application]
    record: Path

    def sent(self) -> list[dict[str, Any]]:
        """Every message the simulator 'sent'."""
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def link_token(self, number: str) -> str:
        """The acknowledgement token in the last SMS to ``number``."""
        texts = [m["text"] for m in self.sent() if m["number"] == number]
        match = LINK.search(texts[-1])
        assert match, texts
        return match.group(1)

    async def login(self) -> None:
        """Log in as ``ops``."""
        page = await self.client.get("/login")
        csrf = _csrf(await page.text())
        answer = await self.client.post("/login", data={"user": "ops", "password": PASSWORD,
                                                        "csrf": csrf}, allow_redirects=False)
        assert answer.status == 303, await answer.text()


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


csrf_of = _csrf


@pytest.fixture
async def site(manual_engine: EngineHarness, tmp_path: Path) -> AsyncIterator[WebSite]:
    """A site for :func:`web_config`."""
    record = tmp_path / "sent.jsonl"
    config = make_config(**web_config())
    engine = await manual_engine.start(
        config, providers={"sim": manual_engine.simulator(record=str(record))})
    pages, linked = web_for_config(engine, config)
    assert pages is not None and linked is not None
    assert pages.settings.secure_cookies  # https public URL: cookies only over TLS ...
    pages.settings.secure_cookies = False  # ... but this test server speaks plain HTTP
    engine.linked_texts = linked
    app = web.Application()
    app.add_routes(pages.routes())
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield WebSite(manual_engine, engine, pages, client, record)
    finally:
        await client.close()
        pages.close()
