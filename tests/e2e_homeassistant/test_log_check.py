"""The log oracle of the real-hass test flags what Home Assistant reports, and nothing benign.

The lines are as a real Home Assistant 2026.2.3 wrote them while running alertline.
"""

from __future__ import annotations

from tests.e2e_homeassistant.hass_process import HassLog
from tests.e2e_homeassistant.log_check import problems

BLOCKING = (
    "2026-11-29 20:30:47.633 WARNING (MainThread) [homeassistant.util.loop] Detected blocking "
    "call to open with args ('/etc/timezone',) inside the event loop by custom integration "
    "'alertline' at custom_components/alertline/__init__.py, line 121")
SLOW = ("2026-11-29 20:30:57.633 WARNING (MainThread) [homeassistant.setup] Setup of alertline "
        "is taking over 10 seconds.")
OWN_WARNING = ("2026-11-29 20:31:00.000 WARNING (MainThread) [alertline.engine.core] provider sim "
               "answered late")
HA_ERROR = ("2026-11-29 20:31:01.000 ERROR (MainThread) [homeassistant.config_entries] Error "
            "setting up entry Simulated for alertline")
TRACEBACK = ("2026-11-29 20:31:02.000 INFO (MainThread) [homeassistant] Task failed",
             "Traceback (most recent call last):",
             '  File "/config/custom_components/alertline/notify.py", line 70, in _send',
             "AttributeError: 'ConfigEntry' object has no attribute 'runtime_data'")
BENIGN = (
    "2026-11-29 20:26:48.735 WARNING (SyncWorker_0) [homeassistant.loader] We found a custom "
    "integration alertline which has not been tested by Home Assistant.",
    "2026-11-29 20:30:42.401 INFO (SyncWorker_1) [homeassistant.util.package] Attempting "
    "install of alertline==0.1.0",
    "2026-11-29 20:34:28.377 INFO (MainThread) [alertline.engine.recovery] resumed 1 "
    "unfinished alerts",
    "2026-11-29 20:30:42.455 ERROR (MainThread) [homeassistant.config_entries] Error occurred "
    "loading flow for integration google_translate: No module named 'mutagen'",
)


def feed(*lines: str) -> HassLog:
    log = HassLog()
    for line in lines:
        log.feed(line)
    return log


def test_benign_lines_pass() -> None:
    assert problems(feed(*BENIGN).records) == []


def test_each_kind_of_problem_is_flagged() -> None:
    log = feed(BENIGN[0], BLOCKING, SLOW, OWN_WARNING, HA_ERROR, *TRACEBACK, BENIGN[2])
    found = problems(log.records)
    assert [text.splitlines()[0] for text in found] == [BLOCKING, SLOW, OWN_WARNING, HA_ERROR,
                                                       TRACEBACK[0]]
    assert found[-1].endswith("no attribute 'runtime_data'")
