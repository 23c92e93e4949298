"""What keeps the web page safe: signed session cookies, CSRF tokens, and rate limits.

Sessions are stateless signed cookies (user, expiry, a random nonce) so a restart does not log
everyone out; the CSRF token of a form is an HMAC of the session's nonce (or of the link token on
an acknowledgement page), checked in constant time. Rate limits count failures per client
address in a sliding window and forget the oldest addresses first, so memory stays bounded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta

SESSION_COOKIE = "alertline_session"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in user."""

    user: str
    expires: datetime
    nonce: str


class Signer:
    """Signs sessions and CSRF tokens with one key (separate from the links' key derivation)."""

    def __init__(self, key: bytes, *, session_ttl: timedelta = timedelta(hours=12)) -> None:
        self._key = hashlib.sha256(b"alertline web session\0" + key).digest()
        self.session_ttl = session_ttl

    def _tag(self, *parts: str) -> str:
        return _b64(hmac.new(self._key, "\0".join(parts).encode(), hashlib.sha256).digest())

    def new_session(self, user: str, now: datetime) -> tuple[Session, str]:
        """A fresh session for ``user`` and its cookie value."""
        session = Session(user=user, expires=now + self.session_ttl,
                          nonce=secrets.token_urlsafe(12))
        body = "\0".join([session.user, str(int(session.expires.timestamp())), session.nonce])
        return session, f"{_b64(body.encode())}.{self._tag('session', body)}"

    def session(self, cookie: str | None, now: datetime) -> Session | None:
        """The session a cookie carries, if it is genuine and current."""
        if not cookie or "." not in cookie:
            return None
        encoded, tag = cookie.rsplit(".", 1)
        try:
            body = _unb64(encoded).decode()
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(tag, self._tag("session", body)):
            return None
        parts = body.split("\0")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        expires = datetime.fromtimestamp(int(parts[1]), now.tzinfo)
        if now >= expires:
            return None
        return Session(user=parts[0], expires=expires, nonce=parts[2])

    def csrf(self, scope: str) -> str:
        """The CSRF token for forms of ``scope`` (a session nonce, or a link token)."""
        return self._tag("csrf", scope)

    def check_csrf(self, scope: str, token: str | None) -> bool:
        """Whether a submitted CSRF token is the one for ``scope`` (constant time)."""
        return bool(token) and hmac.compare_digest(str(token), self.csrf(scope))


class RateLimiter:
    """At most ``limit`` hits per key within ``window`` seconds; oldest keys are forgotten."""

    def __init__(self, limit: int, window: float, *, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        """How many keys are tracked."""
        return len(self._hits)

    def blocked(self, key: str, now: float) -> bool:
        """Whether ``key`` has used up its hits (does not count a hit)."""
        hits = self._hits.get(key)
        if hits is None:
            return False
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        return len(hits) >= self.limit

    def hit(self, key: str, now: float) -> None:
        """Count one hit (a failed login, a bad token) for ``key``."""
        hits = self._hits.pop(key, None) or deque()
        hits.append(now)
        while len(hits) > self.limit:
            hits.popleft()
        self._hits[key] = hits
        while len(self._hits) > self.max_keys:
            self._hits.popitem(last=False)
