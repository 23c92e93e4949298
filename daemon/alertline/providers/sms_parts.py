"""How many SMS parts a text needs, and in which encoding: pure GSM 03.38 / UCS-2 arithmetic.

A text made only of the GSM 03.38 default alphabet (and its extension table) travels as 7-bit
GSM: 160 septets in one SMS, 153 per part of a long (concatenated) one; the extension characters
``^ { } \\ [ ~ ] | €`` and form feed take two septets (an escape and the character). Anything else
(Cyrillic, Greek lower case, CJK, emoji, ...) needs UCS-2/UTF-16: 70 code units in one SMS, 67
per part; characters outside the Basic Multilingual Plane (most emoji) take two code units. A
part never splits an escape pair or a surrogate pair, so a part may hold one unit less.
(PROVIDERS.md A: "GSM-7: 160 characters per single SMS, 153 per part. UTF-16: 70 and 67".)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from alertline.errors import ValidationError

# GSM 03.38 default alphabet (without the escape 0x1B itself) and the extension table
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
CUT_MARKER = {"GSM-7": "...", "UCS-2": "…"}


class SmsEncoding(StrEnum):
    """The two encodings an SMS can travel in."""

    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True, slots=True)
class SmsParts:
    """A text's size on the air: encoding, units (septets or UTF-16 code units) and parts."""

    encoding: SmsEncoding
    units: int
    parts: int

    def to_json(self) -> dict[str, Any]:
        """The form kept in a delivery's details (and so in its report)."""
        return {"encoding": self.encoding.value, "units": self.units, "parts": self.parts}


def non_gsm_characters(text: str) -> str:
    """The distinct characters of ``text`` that GSM 03.38 cannot carry, in order of appearance."""
    return "".join(dict.fromkeys(c for c in text if c not in GSM_BASIC and c not in GSM_EXTENSION))


def is_gsm7(text: str) -> bool:
    """Whether ``text`` fits the GSM 03.38 alphabet (German umlauts do; Cyrillic does not)."""
    return not non_gsm_characters(text)


def best_encoding(text: str) -> SmsEncoding:
    """GSM-7 when the text allows it, else UCS-2."""
    return SmsEncoding.GSM7 if is_gsm7(text) else SmsEncoding.UCS2


def _unit_sizes(text: str, encoding: SmsEncoding) -> list[int]:
    """Per character: septets (GSM-7; a character it lacks counts as one, as replaced) or UTF-16
    code units (UCS-2)."""
    if encoding is SmsEncoding.GSM7:
        return [2 if c in GSM_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def _split(sizes: list[int], encoding: SmsEncoding) -> list[int]:
    """Characters per part: greedy, never splitting a character's units across two parts."""
    single, per_part = ((GSM7_SINGLE, GSM7_PART) if encoding is SmsEncoding.GSM7
                        else (UCS2_SINGLE, UCS2_PART))
    if sum(sizes) <= single:
        return [len(sizes)]
    counts, used, chars = [], 0, 0
    for size in sizes:
        if used + size > per_part:
            counts.append(chars)
            used, chars = 0, 0
        used += size
        chars += 1
    counts.append(chars)
    return counts


def count_parts(text: str, encoding: SmsEncoding | None = None) -> SmsParts:
    """The encoding (``best_encoding`` unless given), units and parts of ``text``."""
    chosen = encoding or best_encoding(text)
    sizes = _unit_sizes(text, chosen)
    return SmsParts(chosen, sum(sizes), len(_split(sizes, chosen)))


def cut_to_parts(text: str, max_parts: int, encoding: SmsEncoding | None = None) -> str:
    """``text`` cut so that it fits ``max_parts`` parts, ending in a visible marker (``...`` in
    GSM-7, ``…`` in UCS-2); unchanged if it already fits."""
    chosen = encoding or best_encoding(text)
    if count_parts(text, chosen).parts <= max_parts:
        return text
    marker = CUT_MARKER[chosen.value]
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits with the marker
        middle = (low + high + 1) // 2
        if count_parts(text[:middle].rstrip() + marker, chosen).parts <= max_parts:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + marker


OVER_MAX_PARTS = ("send", "cut", "reject")


def fit_text(text: str, encoding: SmsEncoding, max_parts: int | None,
             over: str = "send") -> tuple[str, dict[str, Any]]:
    """``text`` as it is to be sent, and what a delivery's details say about its size.

    Over ``max_parts``: ``send`` leaves the text whole (the provider cuts it; the details say
    so), ``cut`` shortens it with a visible marker, ``reject`` raises :class:`ValidationError`
    naming the field ``message``.
    """
    counted = count_parts(text, encoding)
    details = counted.to_json()
    if max_parts is None or counted.parts <= max_parts:
        return text, details
    if over == "reject":
        raise ValidationError("message", f"the text needs {counted.parts} SMS parts in "
                              f"{encoding.value}, more than max_parts {max_parts}")
    if over == "cut":
        cut = cut_to_parts(text, max_parts, encoding)
        return cut, {**count_parts(cut, encoding).to_json(), "cut_from_parts": counted.parts}
    return text, {**details, "max_parts": max_parts}
