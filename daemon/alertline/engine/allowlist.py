"""The destination allowlist (``limits.allow``) and the costly number ranges it must name.

Entries are written as what they mean:

- ``+491709876543`` — a full, valid E.164 number: that number only;
- ``+49170*`` (or ``prefix:+49170``) — every number starting with those digits;
- ``DE`` — every number of that country (ISO 3166 code).

Configurations written before prefixes had a ``*`` used bare short entries (``+49``) as
prefixes. Such an entry, which cannot be a full number, is still read as a prefix, with a
one-time deprecation warning that shows the new spelling; an entry that is a full valid number
is exact, so ``+491709876543`` no longer admits ``+4917098765430``.

Premium-rate, shared-cost, personal ("follow-me"), universal-access and pager numbers cost the
caller extra (or reach a service, not a person). They are refused even without an allowlist,
unless ``limits.allow`` names them explicitly: the full number, or a prefix that contains the
whole range code (``+49900*``, ``+49180*``). A country entry or a short prefix never admits them.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import phonenumbers
import voluptuous as vol
from phonenumbers import PhoneNumberType

_LOGGER = logging.getLogger(__name__)

_DIGITS = re.compile(r"^\+[1-9]\d{0,14}$")
_WARNED: set[str] = set()
NOT_ALLOWED = "not on the allowlist (limits.allow)"

# number types that are refused unless named explicitly (phonenumbers' PhoneNumberType)
COSTLY_TYPES: dict[int, str] = {
    PhoneNumberType.PREMIUM_RATE: "premium-rate",
    PhoneNumberType.SHARED_COST: "shared-cost",
    PhoneNumberType.PERSONAL_NUMBER: "personal (follow-me)",
    PhoneNumberType.UAN: "universal access (UAN)",
    PhoneNumberType.PAGER: "pager",
}


def allow_entry(value: Any) -> str:
    """An allowlist entry in its canonical spelling: ``+4917...`` (exact), ``+49170*`` (prefix)
    or ``DE`` (country); voluptuous validator for ``limits.allow``."""
    text = value.strip().replace(" ", "") if isinstance(value, str) else ""
    if text.lower().startswith("prefix:"):
        text = text[len("prefix:"):] + "*"
    if text.endswith("*") and _DIGITS.fullmatch(text[:-1]):
        return text
    if _DIGITS.fullmatch(text):
        if _is_full_number(text):
            return text
        _warn_legacy_prefix(text)
        return text + "*"
    if text.upper() in phonenumbers.SUPPORTED_REGIONS:
        return text.upper()
    raise vol.Invalid(f"{value!r} is neither an E.164 number (+491701234567), a prefix "
                      "(+49170* or prefix:+49170) nor a country code (DE)")


def _is_full_number(text: str) -> bool:
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(text, None)))
    except phonenumbers.NumberParseException:
        return False


def _warn_legacy_prefix(text: str) -> None:
    """Say once per entry that a bare short entry is read as a prefix, and how to write it."""
    if text in _WARNED:
        return
    _WARNED.add(text)
    _LOGGER.warning("limits.allow entry %r is not a full number and is read as a prefix; "
                    "this spelling is deprecated: write %r (or 'prefix:%s')", text, text + "*",
                    text)


@dataclass(frozen=True, slots=True)
class CostlyRange:
    """A costly number's type and the shortest prefix that names its range."""

    label: str
    range_prefix: str


@functools.lru_cache(maxsize=4096)
def costly_range(e164: str) -> CostlyRange | None:
    """The costly type of ``e164`` and its range (``+49900``), or None for an ordinary number."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    label = COSTLY_TYPES.get(phonenumbers.number_type(parsed))
    if label is None:
        return None
    national = phonenumbers.national_significant_number(parsed)
    code_length = max(phonenumbers.length_of_national_destination_code(parsed), 1)
    return CostlyRange(label, f"+{parsed.country_code}{national[:code_length]}")


class Allowlist:
    """The parsed ``limits.allow`` entries; :meth:`reason` tells why a number may not be used."""

    def __init__(self, entries: Iterable[str]) -> None:
        canonical = [allow_entry(entry) for entry in entries]
        self.numbers = frozenset(e for e in canonical if e.startswith("+") and
                                 not e.endswith("*"))
        self.prefixes = tuple(e[:-1] for e in canonical if e.endswith("*"))
        self.regions = frozenset(e for e in canonical if not e.startswith("+"))

    @property
    def empty(self) -> bool:
        """Whether no entry is configured (every ordinary valid number passes)."""
        return not (self.numbers or self.prefixes or self.regions)

    def reason(self, number: str) -> str | None:
        """Why ``number`` may not be called or texted, or None if it may."""
        if number in self.numbers:
            return None
        costly = costly_range(number)
        if costly is not None:
            if any(number.startswith(p) and len(p) >= len(costly.range_prefix)
                   for p in self.prefixes):
                return None
            return (f"{costly.label} number: refused unless limits.allow names it (the number, "
                    f"or its range as {costly.range_prefix}*)")
        if self.empty or number.startswith(self.prefixes):
            return None
        if self.regions and _region(number) in self.regions:
            return None
        return NOT_ALLOWED


def _region(number: str) -> str | None:
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return None
    return str(region) if region else None
