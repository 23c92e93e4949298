"""The allowlist's syntax: exact numbers, ``*`` prefixes, countries, legacy bare prefixes, and
costly number ranges that must be named explicitly."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import voluptuous as vol
import yaml

from alertline.engine import allowlist
from alertline.engine.allowlist import NOT_ALLOWED, Allowlist, allow_entry

LISTED = "+491709876543"
ONE_DIGIT_MORE = "+4917098765430"   # valid too: today's bug admitted it through LISTED
PREMIUM = "+499001234567"           # +49 900: premium rate
SHARED_COST = "+491801234567"       # +49 180: shared cost
PERSONAL = "+4970012345678"         # +49 700: personal number
PAGER = "+491681234567"             # +49 168: pager
PREMIUM_US = "+19005551234"
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize(("entry", "canonical"), [
    (LISTED, LISTED), ("+49 170 9876543", LISTED), ("+49170*", "+49170*"),
    ("prefix:+49170", "+49170*"), ("prefix: +49 170", "+49170*"), ("de", "DE"), ("AT", "AT"),
    ("+49", "+49*"), ("+4917012345", "+4917012345*"),
])
def test_entries_take_their_canonical_spelling(entry: str, canonical: str) -> None:
    assert allow_entry(entry) == canonical


@pytest.mark.parametrize("entry", ["0049", "XX", "+49170**", "prefix:49", "*", "", "+49x*"])
def test_malformed_entries_are_refused_with_the_syntax(entry: str) -> None:
    with pytest.raises(vol.Invalid, match=re.escape("prefix (+49170* or prefix:+49170)")):
        allow_entry(entry)


def test_a_full_number_admits_that_number_only() -> None:
    listed = Allowlist([LISTED])
    assert listed.reason(LISTED) is None
    assert listed.reason(ONE_DIGIT_MORE) == NOT_ALLOWED
    assert listed.reason("+49170987654") == NOT_ALLOWED


@pytest.mark.parametrize("entry", ["+49170*", "prefix:+49170", "+49", "+4917", "DE"])
def test_prefixes_and_countries_admit_their_range(entry: str) -> None:
    admitted = Allowlist([entry])
    assert admitted.reason(LISTED) is None
    assert admitted.reason(ONE_DIGIT_MORE) is None
    assert admitted.reason("+436641234567") == NOT_ALLOWED


def test_a_legacy_bare_prefix_warns_once_with_the_new_spelling(
        caplog: pytest.LogCaptureFixture) -> None:
    allowlist._WARNED.discard("+43")
    with caplog.at_level(logging.WARNING, logger="alertline.engine.allowlist"):
        Allowlist(["+43"])
        Allowlist(["+43"])
    warnings = [r.getMessage() for r in caplog.records if r.name == "alertline.engine.allowlist"]
    assert len(warnings) == 1
    assert "'+43*'" in warnings[0] and "deprecated" in warnings[0]


@pytest.mark.parametrize(("number", "label", "range_prefix"), [
    (PREMIUM, "premium-rate", "+49900"), (SHARED_COST, "shared-cost", "+49180"),
    (PERSONAL, "personal (follow-me)", "+49700"), (PAGER, "pager", "+49168"),
    (PREMIUM_US, "premium-rate", "+1900"),
])
@pytest.mark.parametrize("entries", [[], ["+49"], ["+49*", "+1*"], ["DE", "US"], ["+4*"]])
def test_costly_numbers_are_refused_unless_named(entries: list[str], number: str, label: str,
                                                 range_prefix: str) -> None:
    reason = Allowlist(entries).reason(number)
    assert reason is not None and reason.startswith(f"{label} number: refused")
    assert f"{range_prefix}*" in reason


@pytest.mark.parametrize(("entries", "number"), [
    ([PREMIUM], PREMIUM), (["+49900*"], PREMIUM), (["prefix:+499001"], PREMIUM),
    (["+49180*"], SHARED_COST), (["+1900*"], PREMIUM_US),
])
def test_a_costly_number_named_explicitly_passes(entries: list[str], number: str) -> None:
    assert Allowlist(entries).reason(number) is None


def test_the_readme_example_does_not_admit_premium_rate() -> None:
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"),
                                       re.S) if b.startswith("escalations:"))
    example = Allowlist(yaml.safe_load(block)["limits"]["allow"])
    assert example.reason("+49 900 1234567".replace(" ", "")) is not None
    assert example.reason(ONE_DIGIT_MORE) is None
