"""Prometheus text exposition."""

from __future__ import annotations

from alertline.http.metrics import Family, render


def test_render_writes_help_type_and_escaped_labels() -> None:
    text = render([
        Family("x_total", "counter", "Things").add(3),
        Family("y", "gauge", "By label").add(1.5, provider='a"b\\c\nd', state="ok"),
        Family("z_seconds", "summary", "Time").add(0.25, suffix="_sum").add(2, suffix="_count"),
    ])

    assert text.splitlines() == [
        "# HELP x_total Things", "# TYPE x_total counter", "x_total 3",
        "# HELP y By label", "# TYPE y gauge", 'y{provider="a\\"b\\\\c\\nd",state="ok"} 1.5',
        "# HELP z_seconds Time", "# TYPE z_seconds summary", "z_seconds_sum 0.25",
        "z_seconds_count 2"]
    assert text.endswith("\n")
