"""What a clean run of alertline in Home Assistant must not log.

Home Assistant switches its blocking-call detection off under pytest; a real process reports
blocking calls, slow setups and deprecated-API use in its log, so the log is the test's oracle.
"""

from __future__ import annotations

from tests.e2e_homeassistant.hass_process import LogRecord

OWN_LOGGERS = ("alertline", "custom_components.alertline")
ALWAYS_WRONG = (
    "Detected blocking call",
    "Setup of alertline is taking over",
    "Detected that custom integration 'alertline'",
)
_ABOVE_INFO = {"WARNING", "ERROR", "CRITICAL"}
_ERRORS = {"ERROR", "CRITICAL"}


def _is_own(logger: str) -> bool:
    return any(logger == name or logger.startswith(name + ".") for name in OWN_LOGGERS)


def is_problem(record: LogRecord) -> bool:
    """A blocking call anywhere, a slow setup, anything above INFO from alertline's own
    loggers, or an error or traceback that names alertline."""
    if any(text in record.text for text in ALWAYS_WRONG):
        return True
    if _is_own(record.logger):
        return record.level in _ABOVE_INFO
    return "alertline" in record.text and (record.level in _ERRORS or "Traceback" in record.text)


def problems(records: list[LogRecord]) -> list[str]:
    """The text of every record that shows alertline misbehaving."""
    return [record.text for record in records if is_problem(record)]
