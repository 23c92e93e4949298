"""The web page's handlers: acknowledgement links, login, the dashboard, an alert's story.

Server-rendered with Jinja2 (autoescaping on), one small script for live updates, no asset
from anywhere else. Only POSTs act, each with a CSRF token; GETs never change anything, so a link
preview that fetches an acknowledgement link cannot acknowledge. Unauthenticated pages (the link
pages, the login page) never show a full number or a secret.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from aiohttp import web

from alertline.errors import AlertlineError, NotFoundError
from alertline.http.web.guard import SESSION_COOKIE, RateLimiter, Session, Signer
from alertline.http.web.links import InvalidLink, LinkSigner
from alertline.http.web.passwords import verify_password
from alertline.model import Report

if TYPE_CHECKING:
    from alertline.engine.core import Engine

_LOGGER = logging.getLogger(__name__)
_HERE = Path(__file__).parent
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # an acknowledgement token must not leak in a Referer
    "Cache-Control": "no-store",
}
StatusSource = Callable[[], Awaitable[dict[str, Any]]]


def mask_number(number: str) -> str:
    """``+491701234560`` → ``+49 ••• ••• 60``: enough to recognise, not enough to call."""
    if not number.startswith("+") or len(number) < 6:
        return "•••"
    return f"{number[:3]} ••• ••• {number[-2:]}"


def _who(by: str | None) -> str | None:
    """Who acknowledged, as an unauthenticated page may show it."""
    if by is None:
        return None
    return mask_number(by) if by.startswith("+") else by


@dataclass
class WebSettings:
    """The ``web`` section, typed."""

    users: dict[str, str] = field(default_factory=dict)  # name → password hash
    trusted_header: str | None = None
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    link_resolve: bool = False
    secure_cookies: bool = False
    login_attempts: int = 5
    link_attempts: int = 20


class WebPages:
    """Every web handler, around one engine."""

    def __init__(self, engine: Engine, links: LinkSigner, signer: Signer, settings: WebSettings,
                 *, status: StatusSource | None = None) -> None:
        self.engine = engine
        self.links = links
        self.signer = signer
        self.settings = settings
        self.status = status
        self.login_limit = RateLimiter(settings.login_attempts, 300.0)
        self.link_limit = RateLimiter(settings.link_attempts, 300.0)
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined)
        self._templates.filters["when"] = _when
        self._templates.filters["masked"] = mask_number
        self._changes: set[asyncio.Queue[str]] = set()
        self._unsubscribe = engine.subscribe(self._on_report)

    def routes(self) -> list[web.RouteDef]:
        """The pages' routes (mounted on the daemon's HTTP server)."""
        return [
            web.get("/", self.dashboard), web.get("/login", self.login_form),
            web.post("/login", self.login), web.post("/logout", self.logout),
            web.get("/alerts/{alert_id}", self.alert_page),
            web.post("/alerts/{alert_id}/{action}", self.alert_action),
            web.get("/a/{token}", self.link_page), web.post("/a/{token}", self.link_action),
            web.get("/events", self.events), web.get("/static/{name}", self.static),
        ]

    def close(self) -> None:
        """Stop following reports."""
        self._unsubscribe()

    # -- rendering -------------------------------------------------------------------------

    def _render(self, name: str, status: int = 200, **context: Any) -> web.Response:
        html = self._templates.get_template(name).render(**context)
        return web.Response(text=html, status=status, content_type="text/html",
                            headers=_SECURITY_HEADERS)

    def _message(self, title: str, text: str, status: int) -> web.Response:
        return self._render("message.html", status, title=title, text=text, user=None)

    async def static(self, request: web.Request) -> web.StreamResponse:
        """The stylesheet and the live-update script, shipped with the package."""
        name = request.match_info["name"]
        if name not in ("app.css", "app.js"):
            raise web.HTTPNotFound
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        return web.Response(body=(_HERE / "templates" / name).read_bytes(), content_type=kind,
                            headers={**_SECURITY_HEADERS, "Cache-Control": "max-age=3600"})

    # -- acknowledgement links -------------------------------------------------------------

    def _client(self, request: web.Request) -> str:
        return request.remote or "?"

    async def _link_target(self, request: web.Request) -> tuple[Any, Report] | web.Response:
        client = self._client(request)
        if self.link_limit.blocked(client, time.monotonic()):
            return self._message("Too many attempts", "Try again in a few minutes.", 429)
        try:
            target = self.links.verify(request.match_info["token"], self.engine.clock.now())
        except InvalidLink as err:
            if not err.expired:
                self.link_limit.hit(client, time.monotonic())
                _LOGGER.info("an invalid acknowledgement link was opened (%s)", err)
                return self._message("Link not valid", "This link is not valid.", 404)
            return self._message("Link expired", "This link has expired. Acknowledge the alert "
                                 "another way, or ask for a new page.", 410)
        try:
            report = await self.engine.report(target.alert_id)
        except NotFoundError:
            return self._message("Alert not found", "This alert is no longer kept.", 404)
        return target, report

    def _recipient(self, report: Report, delivery_id: str) -> tuple[str, str | None]:
        for delivery in report.deliveries:
            if delivery.id == delivery_id:
                return delivery.recipient.number, delivery.recipient.contact
        return "", None

    async def link_page(self, request: web.Request) -> web.Response:
        """GET: show the alert and the buttons; never acts."""
        found = await self._link_target(request)
        if isinstance(found, web.Response):
            return found
        target, report = found
        number, contact = self._recipient(report, target.delivery_id)
        token = request.match_info["token"]
        return self._render(
            "ack.html", report=report, number=number, contact=contact, user=None,
            acknowledged_by=_who(report.status.acknowledged.by)
            if report.status.acknowledged else None,
            can_resolve=self.settings.link_resolve, csrf=self.signer.csrf(f"link:{token}"),
            expires=target.expires)

    async def link_action(self, request: web.Request) -> web.Response:
        """POST: acknowledge (or resolve, where allowed) as the link's recipient."""
        found = await self._link_target(request)
        if isinstance(found, web.Response):
            return found
        target, report = found
        token = request.match_info["token"]
        form = await request.post()
        if not self.signer.check_csrf(f"link:{token}", _field(form, "csrf")):
            return self._message("Form expired", "Reload the page and try again.", 403)
        action = _field(form, "action")
        number, contact = self._recipient(report, target.delivery_id)
        by = contact or number or None
        if action == "ack":
            await self.engine.ack(target.alert_id, by=by, via="link")
        elif action == "resolve" and self.settings.link_resolve:
            await self.engine.resolve(target.alert_id, by=by)
        else:
            return self._message("Not allowed", "This action is not allowed here.", 403)
        raise web.HTTPSeeOther(f"/a/{token}")

    # -- login -----------------------------------------------------------------------------

    def _session(self, request: web.Request) -> Session | None:
        now = self.engine.clock.now()
        header = self.settings.trusted_header
        if header and request.remote in self.settings.trusted_proxies:
            user = request.headers.get(header, "").strip()
            if user:
                return Session(user=user, expires=now, nonce=f"proxy:{user}")
        return self.signer.session(request.cookies.get(SESSION_COOKIE), now)

    def _require(self, request: web.Request) -> Session:
        session = self._session(request)
        if session is None:
            raise web.HTTPSeeOther("/login")
        return session

    async def login_form(self, request: web.Request) -> web.Response:
        """The login page (its CSRF scope is a per-form nonce kept in a short cookie)."""
        return self._render("login.html", error=None, user=None,
                            csrf=self.signer.csrf("login"))

    async def login(self, request: web.Request) -> web.Response:
        """Check a user's password; five failures per address in five minutes lock it out."""
        client = self._client(request)
        if self.login_limit.blocked(client, time.monotonic()):
            return self._render("login.html", 429, error="Too many attempts; wait a few "
                                "minutes.", user=None, csrf=self.signer.csrf("login"))
        form = await request.post()
        if not self.signer.check_csrf("login", _field(form, "csrf")):
            return self._message("Form expired", "Reload the page and try again.", 403)
        name, password = _field(form, "user"), _field(form, "password")
        stored = self.settings.users.get(name)
        # a missing user costs the same hash work as a wrong password
        ok = await asyncio.to_thread(verify_password, password, stored or _DUMMY_HASH)
        if not ok or stored is None:
            self.login_limit.hit(client, time.monotonic())
            _LOGGER.info("failed web login from %s", client)
            return self._render("login.html", 401, error="Wrong user or password.", user=None,
                                csrf=self.signer.csrf("login"))
        _, cookie = self.signer.new_session(name, self.engine.clock.now())
        response = web.HTTPSeeOther("/")
        response.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="Strict",
                            secure=self.settings.secure_cookies, path="/",
                            max_age=int(self.signer.session_ttl.total_seconds()))
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        """Forget the session cookie."""
        session = self._require(request)
        form = await request.post()
        if not self.signer.check_csrf(session.nonce, _field(form, "csrf")):
            return self._message("Form expired", "Reload the page and try again.", 403)
        response = web.HTTPSeeOther("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

    # -- dashboard -------------------------------------------------------------------------

    async def dashboard(self, request: web.Request) -> web.Response:
        """Open and recent alerts, who is on call, heartbeats and providers."""
        session = self._require(request)
        alerts = await self.engine.store.recent_alerts(100)
        status = await self.status() if self.status is not None else {}
        providers = status.get("providers") or [
            {"name": name, "up": None} for name in sorted(self.engine.providers)]
        return self._render("dashboard.html", user=session.user, alerts=alerts,
                            oncall=status.get("oncall", []),
                            heartbeats=status.get("heartbeats", []), providers=providers,
                            csrf=self.signer.csrf(session.nonce))

    async def alert_page(self, request: web.Request) -> web.Response:
        """One alert: its deliveries and the timeline of every state change."""
        session = self._require(request)
        alert_id = request.match_info["alert_id"]
        try:
            report = await self.engine.report(alert_id)
        except NotFoundError:
            return self._render("message.html", 404, title="Alert not found",
                                text="No alert has this id.", user=session.user)
        events = await self.engine.store.events(alert_id)
        return self._render("alert.html", user=session.user, report=report, events=events,
                            csrf=self.signer.csrf(session.nonce))

    async def alert_action(self, request: web.Request) -> web.Response:
        """Acknowledge, cancel or resolve from the dashboard."""
        session = self._require(request)
        alert_id, action = request.match_info["alert_id"], request.match_info["action"]
        form = await request.post()
        if not self.signer.check_csrf(session.nonce, _field(form, "csrf")):
            return self._message("Form expired", "Reload the page and try again.", 403)
        actions = {"ack": lambda: self.engine.ack(alert_id, by=session.user, via="web"),
                   "cancel": lambda: self.engine.cancel(alert_id, by=session.user),
                   "resolve": lambda: self.engine.resolve(alert_id, by=session.user)}
        if action not in actions:
            raise web.HTTPNotFound
        try:
            await actions[action]()
        except AlertlineError as err:
            return self._render("message.html", 400, title="Not done",
                                text=self.engine.redactor.text(str(err)), user=session.user)
        raise web.HTTPSeeOther(f"/alerts/{alert_id}")

    # -- live updates ----------------------------------------------------------------------

    def _on_report(self, report: Report) -> None:
        for queue in list(self._changes):
            if queue.qsize() < 100:
                queue.put_nowait(report.alert.id)

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: the id of each alert that changed (logged-in users only)."""
        self._require(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-store"})
        await response.prepare(request)
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._changes.add(queue)
        try:
            while True:
                try:
                    alert_id = await asyncio.wait_for(queue.get(), 25)
                    await response.write(f"data: {alert_id}\n\n".encode())
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
        except ConnectionResetError:
            pass  # the browser went away
        finally:
            self._changes.discard(queue)
        return response


_DUMMY_HASH = "scrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        moment = value
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
