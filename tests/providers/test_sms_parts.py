"""SMS part arithmetic: GSM-7 160/153, UCS-2 70/67, extension characters and emoji count double."""

from __future__ import annotations

import pytest

from alertline.providers.sms_parts import (
    SmsEncoding,
    best_encoding,
    count_parts,
    cut_to_parts,
    non_gsm_characters,
)

GSM7, UCS2 = SmsEncoding.GSM7, SmsEncoding.UCS2


@pytest.mark.parametrize(("text", "encoding"), [
    ("Wasserschaden im Keller: Tür öffnen, Ärger vermeiden", GSM7),  # umlauts are GSM-7
    ("Price 5€ [ok] {x} ~ ^ | \\", GSM7),  # the extension table
    ("Протечка воды в подвале", UCS2),
    ("Διαρροή νερού", UCS2),  # Greek lower case is not GSM (only some capitals are)
    ("地下室漏水", UCS2),
    ("Leak 💧", UCS2),
    ("ç is not GSM, Ç is", UCS2),
])
def test_best_encoding(text: str, encoding: SmsEncoding) -> None:
    assert best_encoding(text) is encoding


@pytest.mark.parametrize(("text", "encoding", "units", "parts"), [
    ("a" * 160, GSM7, 160, 1),
    ("a" * 161, GSM7, 161, 2),
    ("a" * 306, GSM7, 306, 2),
    ("a" * 307, GSM7, 307, 3),
    ("€" * 80, GSM7, 160, 1),  # extension characters take two septets
    ("€" * 81, GSM7, 162, 2),
    ("a" * 152 + "€" + "a" * 10, GSM7, 164, 2),  # the escape pair is not split...
    ("a" * 152 + "€" + "a" * 152, GSM7, 306, 3),  # ...so a part may hold one septet less
    ("я" * 70, UCS2, 70, 1),
    ("я" * 71, UCS2, 71, 2),
    ("я" * 134, UCS2, 134, 2),
    ("я" * 135, UCS2, 135, 3),
    ("💧" * 35, UCS2, 70, 1),  # outside the BMP: two UTF-16 code units each
    ("💧" * 36, UCS2, 72, 2),
    ("", GSM7, 0, 1),
])
def test_count_parts(text: str, encoding: SmsEncoding, units: int, parts: int) -> None:
    counted = count_parts(text)
    assert (counted.encoding, counted.units, counted.parts) == (encoding, units, parts)
    assert counted.to_json() == {"encoding": encoding.value, "units": units, "parts": parts}


def test_a_chosen_encoding_is_counted_as_chosen() -> None:
    assert count_parts("a" * 100, UCS2).parts == 2  # GSM text sent as UTF-16
    assert non_gsm_characters("Leak 💧 in Москва") == "💧Москва"


@pytest.mark.parametrize(("text", "max_parts", "marker"), [
    ("word " * 100, 2, "..."), ("слово " * 60, 2, "…"), ("💧" * 200, 3, "…")])
def test_cut_to_parts_fits_and_shows_the_cut(text: str, max_parts: int, marker: str) -> None:
    cut = cut_to_parts(text, max_parts)
    assert cut.endswith(marker) and text.startswith(cut.removesuffix(marker))
    assert count_parts(cut).parts == max_parts
    assert count_parts(cut + "x").parts > max_parts or len(cut) >= len(text)
    assert cut_to_parts("short", 1) == "short"
