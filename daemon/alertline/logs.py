"""Logging setup: plain or JSON lines, with every known secret redacted."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from .redact import Redactor


class RedactingFormatter(logging.Formatter):
    """Formats with an inner formatter, then masks secrets in the whole line (tracebacks too)."""

    def __init__(self, inner: logging.Formatter, redactor: Redactor) -> None:
        super().__init__()
        self.inner = inner
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        """The inner formatter's line with secrets masked."""
        return self.redactor.text(self.inner.format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as JSON."""
        data = {"time": self.formatTime(record), "level": record.levelname,
                "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def configure_logging(level: str, *, as_json: bool = False, secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once for the process."""
    handler = logging.StreamHandler()
    inner = JsonFormatter() if as_json else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(RedactingFormatter(inner, Redactor(secrets)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "httpx", "httpcore", "zeep"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
