"""Acknowledgement links: signed, per-recipient, expiring, and short enough for an SMS.

A link is ``<public_url>/a/<token>``. The token carries what it acts on — the alert, the
delivery's number within it, and the minute it expires — and an HMAC-SHA256 tag over that,
truncated to 64 bits: guessing one is hopeless at the rate the web server lets anyone try.
Nothing is stored per link, so a link survives restarts and keeps working on a closed alert
(its page then says what happened). Generated alert ids (``al-`` and 16 hex digits) pack into
8 bytes, which keeps a whole link around 60 characters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from alertline.model import Alert, Channel, Delivery

_TAG_BYTES = 8
_GENERATED = re.compile(r"al-([0-9a-f]{16})")
_HEADER = struct.Struct(">IH")  # expiry in minutes since the epoch; delivery index (+ flag)
_PACKED_FLAG = 0x8000
ACK_URL = "ack_url"


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """What a valid token names."""

    alert_id: str
    delivery_id: str
    expires: datetime


class InvalidLink(Exception):
    """A token that was altered, made up, or has expired (``expired`` tells which)."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.expired = expired


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Makes and checks acknowledgement tokens with one secret key."""

    def __init__(self, key: bytes, *, ttl: timedelta = timedelta(days=3)) -> None:
        if len(key) < 16:
            raise ValueError("the link key needs at least 16 bytes")
        self._key = hashlib.sha256(b"alertline ack link\0" + key).digest()
        self.ttl = ttl

    def token(self, delivery_id: str, alert_id: str, now: datetime) -> str:
        """The token for one delivery (its index is the number after the alert id)."""
        prefix = f"{alert_id}-"
        if not delivery_id.startswith(prefix) or not delivery_id[len(prefix):].isdigit():
            raise ValueError(f"delivery id {delivery_id!r} does not belong to {alert_id!r}")
        index = int(delivery_id[len(prefix):])
        if index >= _PACKED_FLAG:
            raise ValueError("too many deliveries for a link")
        expires = int((now + self.ttl).timestamp() // 60) + 1
        generated = _GENERATED.fullmatch(alert_id)
        if generated:
            body = _HEADER.pack(expires, index | _PACKED_FLAG) + bytes.fromhex(generated.group(1))
        else:
            body = _HEADER.pack(expires, index) + alert_id.encode()
        return _b64(body + self._tag(body))

    def verify(self, token: str, now: datetime) -> LinkTarget:
        """The target of a valid token, else :class:`InvalidLink` (tags compared in constant
        time)."""
        try:
            raw = _unb64(token)
        except (binascii.Error, ValueError):
            raise InvalidLink("malformed") from None
        if len(raw) < _HEADER.size + _TAG_BYTES + 1:
            raise InvalidLink("malformed")
        body, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        if not hmac.compare_digest(tag, self._tag(body)):
            raise InvalidLink("bad signature")
        minutes, index = _HEADER.unpack(body[:_HEADER.size])
        rest = body[_HEADER.size:]
        if index & _PACKED_FLAG:
            alert_id = f"al-{rest.hex()}"
            index &= ~_PACKED_FLAG
        else:
            try:
                alert_id = rest.decode()
            except UnicodeDecodeError:
                raise InvalidLink("malformed") from None
        expires = datetime.fromtimestamp(minutes * 60, UTC)
        target = LinkTarget(alert_id=alert_id, delivery_id=f"{alert_id}-{index}",
                            expires=expires)
        if now >= expires:
            raise InvalidLink("expired", expired=True)
        return target

    def _tag(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_TAG_BYTES]


class AckLinks:
    """Turns deliveries into ``<public_url>/a/<token>`` links (the engine asks for one per SMS)."""

    def __init__(self, signer: LinkSigner, public_url: str) -> None:
        self.signer = signer
        self.base = public_url.rstrip("/")

    def url_for(self, delivery_id: str, alert_id: str, now: datetime) -> str:
        """The link a recipient opens to acknowledge."""
        return f"{self.base}/a/{self.signer.token(delivery_id, alert_id, now)}"


PLACEHOLDER = "${" + ACK_URL + "}"


def link_wanted(config_raw: dict[str, Any], alert: Alert, delivery: Delivery,
                policy: str | None) -> bool:
    """Whether ``ack_link: true`` is set on the alert's route or on the delivery's step."""
    route = (config_raw.get("routes") or {}).get(alert.route or "")
    if route and route.get("ack_link"):
        return True
    steps = ((config_raw.get("escalations") or {}).get(policy or "") or {}).get("steps") or []
    if delivery.step is None or not steps:
        return False
    return bool(steps[delivery.step % len(steps)].get("ack_link"))


class LinkedTexts:
    """Puts a recipient's acknowledgement link into the SMS texts that ask for one."""

    def __init__(self, links: AckLinks, config_raw: dict[str, Any]) -> None:
        self.links = links
        self.config_raw = config_raw

    def apply(self, alert: Alert, delivery: Delivery, template: str, values: dict[str, str],
              *, policy: str | None, now: datetime) -> tuple[str, dict[str, str]]:
        """``template`` (with the link appended where the route or step asks for it) and the
        personalization values including ``ack_url``; voice texts are left as they are."""
        if delivery.channel is not Channel.SMS:
            return template, values
        if PLACEHOLDER not in template and link_wanted(self.config_raw, alert, delivery, policy):
            template = f"{template.rstrip()} {PLACEHOLDER}"
        if PLACEHOLDER not in template:
            return template, values
        return template, {**values, ACK_URL: self.links.url_for(delivery.id, alert.id, now)}
