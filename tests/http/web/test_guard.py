"""Password hashes, session cookies, CSRF tokens and rate limits of the web page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alertline.http.web.guard import RateLimiter, Signer
from alertline.http.web.passwords import hash_password, is_password_hash, verify_password

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_password_hashes_verify_only_the_right_password() -> None:
    stored = hash_password("correct horse battery")
    assert is_password_hash(stored)
    assert "correct" not in stored
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert hash_password("correct horse battery") != stored  # salted
    assert not verify_password("x", "plain-text")
    assert not verify_password("x", "scrypt$15$8$1$!!$!!")


def test_sessions_are_signed_and_expire() -> None:
    signer = Signer(b"k" * 32, session_ttl=timedelta(hours=1))
    session, cookie = signer.new_session("ops", NOW)
    assert signer.session(cookie, NOW + timedelta(minutes=59)) == session
    assert signer.session(cookie, NOW + timedelta(minutes=61)) is None
    body, tag = cookie.rsplit(".", 1)
    assert signer.session(f"{body}.{tag[:-1]}x", NOW) is None
    assert Signer(b"o" * 32).session(cookie, NOW) is None
    assert signer.session("garbage", NOW) is None
    assert signer.session(None, NOW) is None


def test_csrf_tokens_are_bound_to_their_scope() -> None:
    signer = Signer(b"k" * 32)
    token = signer.csrf("nonce-a")
    assert signer.check_csrf("nonce-a", token)
    assert not signer.check_csrf("nonce-b", token)
    assert not signer.check_csrf("nonce-a", None)
    assert not signer.check_csrf("nonce-a", "")


def test_rate_limiter_blocks_after_the_limit_and_forgets_after_the_window() -> None:
    limiter = RateLimiter(3, 60.0, max_keys=2)
    for second in range(3):
        assert not limiter.blocked("1.2.3.4", second)
        limiter.hit("1.2.3.4", second)
    assert limiter.blocked("1.2.3.4", 10)
    assert not limiter.blocked("5.6.7.8", 10)
    assert not limiter.blocked("1.2.3.4", 61.0)
    limiter.hit("a", 0)
    limiter.hit("b", 0)
    limiter.hit("c", 0)  # the oldest address is forgotten: memory stays bounded
    assert len(limiter) == 2
