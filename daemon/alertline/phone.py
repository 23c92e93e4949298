"""Phone numbers: parse and validate to E.164, and format them the way each provider wants."""

from __future__ import annotations

import functools
from enum import StrEnum

import phonenumbers

from alertline.errors import ValidationError


class NumberFormat(StrEnum):
    """Wire formats providers ask for."""

    E164 = "e164"          # +491701234567
    DIGITS = "digits"      # 491701234567 (country code, no plus, no leading zero)


_REASONS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD:
        "too short after the international prefix",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}
_SHOWN_CHARS = 40  # an error quotes at most this much of the rejected input


def parse_e164(raw: str, *, default_region: str | None = None, field: str = "to") -> str:
    """``raw`` as E.164 (``+4917...``), or :class:`ValidationError` naming the number and why."""
    if not isinstance(raw, str):
        raise ValidationError(field, f"expected a phone number as text, got {type(raw).__name__}")
    text = raw.strip()
    if not text:
        raise ValidationError(field, "empty phone number")
    shown = raw if len(raw) <= _SHOWN_CHARS else raw[:_SHOWN_CHARS] + "…"
    if any(char.isalpha() for char in text) and any(char.isdigit() for char in text):
        # phonenumbers maps letters to keypad digits (vanity numbers): +49170ABCDEF0 would
        # become +491702223330, a number nobody wrote down, so letters are an error instead
        raise ValidationError(field, f"invalid phone number {shown!r}: letters are not allowed "
                              "(write the digits)")
    e164, reason = _classify(text, default_region)
    if e164 is None:
        raise ValidationError(field, f"invalid phone number {shown!r}: {reason}")
    return e164


@functools.lru_cache(maxsize=4096)
def _classify(text: str, default_region: str | None) -> tuple[str | None, str | None]:
    """``(e164, None)`` or ``(None, reason)``; cached, since alerts go to the same few numbers
    again and again and full validation is the costliest step of accepting an alert."""
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as err:
        reason = _REASONS.get(err.error_type, "not a phone number")
        if err.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE and \
                not text.startswith("+") and default_region is None:
            reason = "needs an international prefix (+ and country code)"
        return None, reason
    if not phonenumbers.is_possible_number(parsed):
        return None, "impossible length"
    if not phonenumbers.is_valid_number(parsed):
        return None, "not a valid number"
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), None


def looks_like_number(text: str) -> bool:
    """Whether ``text`` is meant as a phone number (rather than a contact or group name)."""
    stripped = text.strip()
    return bool(stripped) and (stripped[0] in "+0123456789(")


def format_number(e164: str, style: NumberFormat) -> str:
    """An E.164 number in a provider's wire format."""
    if style is NumberFormat.DIGITS:
        return e164.lstrip("+")
    return e164


def country_code(e164: str) -> int:
    """The country calling code of an E.164 number."""
    return int(phonenumbers.parse(e164, None).country_code or 0)
