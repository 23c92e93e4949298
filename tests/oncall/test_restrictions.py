"""Restriction windows such as ``Mon-Fri 09:00-17:00``."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from alertline.oncall.restrictions import parse_window


def test_day_ranges_lists_and_wrapping() -> None:
    assert parse_window("Mon-Fri 09:00-17:00").days == frozenset({0, 1, 2, 3, 4})
    assert parse_window("Sat, Sun 00:00-24:00").days == frozenset({5, 6})
    assert parse_window("Fri-Mon 18:00-08:00").days == frozenset({4, 5, 6, 0})
    assert parse_window("thursday 10:00-11:00").days == frozenset({3})
    assert parse_window("22:00-06:00").days == frozenset(range(7))


def test_occurrences_run_past_midnight_and_are_clipped() -> None:
    window = parse_window("Fri 22:00-06:00")
    friday = datetime(2026, 1, 2)  # a Friday
    got = list(window.occurrences(friday, friday + timedelta(days=7)))
    assert got == [(datetime(2026, 1, 2, 22), datetime(2026, 1, 3, 6))]
    clipped = list(window.occurrences(datetime(2026, 1, 3, 1), datetime(2026, 1, 3, 12)))
    assert clipped == [(datetime(2026, 1, 3, 1), datetime(2026, 1, 3, 6))]


@pytest.mark.parametrize(("text", "reason"), [
    ("Mon-Fri", "is not like"),
    ("Mon-Fri 25:00-26:00", "is not a time of day"),
    ("Mon-Fri 09:60-17:00", "is not a time of day"),
    ("Mon-Wed-Fri 09:00-17:00", "is not a weekday or a range"),
    ("Mon 09:00-09:00", "is an empty time range"),
    ("Mon 24:00-10:00", "is not a time of day"),
])
def test_bad_windows_say_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_window(text)
