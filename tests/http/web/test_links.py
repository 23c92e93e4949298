"""Acknowledgement tokens: round trip, tampering, expiry, length."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertline.http.web.links import AckLinks, InvalidLink, LinkSigner

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
KEY = b"k" * 32


def test_generated_ids_round_trip_and_make_a_short_link() -> None:
    signer = LinkSigner(KEY)
    token = signer.token("al-0123456789abcdef-3", "al-0123456789abcdef", NOW)
    target = signer.verify(token, NOW + timedelta(hours=1))
    assert (target.alert_id, target.delivery_id) == ("al-0123456789abcdef",
                                                     "al-0123456789abcdef-3")
    url = AckLinks(signer, "https://alerts.example.com/").url_for(
        "al-0123456789abcdef-3", "al-0123456789abcdef", NOW)
    assert url.startswith("https://alerts.example.com/a/")
    assert len(url) <= 64  # an SMS is 160 characters: the link must leave room for the alert


@given(alert_id=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF),
                        min_size=1, max_size=80),
       index=st.integers(min_value=1, max_value=5000))
def test_any_alert_id_round_trips(alert_id: str, index: int) -> None:
    signer = LinkSigner(KEY)
    token = signer.token(f"{alert_id}-{index}", alert_id, NOW)
    assert token.isascii() and "/" not in token and "+" not in token
    target = signer.verify(token, NOW)
    assert target.delivery_id == f"{alert_id}-{index}"


def test_a_changed_character_or_another_key_is_refused() -> None:
    signer = LinkSigner(KEY)
    token = signer.token("storm-1-1", "storm-1", NOW)
    for position in range(len(token)):
        swapped = "A" if token[position] != "A" else "B"
        tampered = token[:position] + swapped + token[position + 1:]
        with pytest.raises(InvalidLink):
            signer.verify(tampered, NOW)
    with pytest.raises(InvalidLink) as other:
        LinkSigner(b"x" * 32).verify(token, NOW)
    assert not other.value.expired
    for junk in ("", "!!!", "a" * 200, "AAAA"):
        with pytest.raises(InvalidLink):
            signer.verify(junk, NOW)


def test_links_expire_after_their_lifetime() -> None:
    signer = LinkSigner(KEY, ttl=timedelta(hours=2))
    token = signer.token("a-1", "a", NOW)
    assert signer.verify(token, NOW + timedelta(hours=1, minutes=59)).alert_id == "a"
    with pytest.raises(InvalidLink) as late:
        signer.verify(token, NOW + timedelta(hours=2, minutes=2))
    assert late.value.expired


def test_a_delivery_of_another_alert_cannot_be_signed() -> None:
    with pytest.raises(ValueError, match="does not belong"):
        LinkSigner(KEY).token("other-1", "mine", NOW)
    with pytest.raises(ValueError, match="16 bytes"):
        LinkSigner(b"short")
