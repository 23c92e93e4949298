"""Logging setup: plain or JSON lines, with every known secret redacted."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from alertline.redact import Redactor


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
    """One JSON object per line, secrets masked in each field before it is encoded (JSON
    escaping would otherwise turn a secret with ``"`` or ``\\`` into text the redactor misses)."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        """The record as JSON."""
        mask = self.redactor.text
        data = {"time": self.formatTime(record), "level": record.levelname,
                "logger": record.name, "message": mask(record.getMessage())}
        if record.exc_info:
            data["exception"] = mask(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False)


def configure_logging(level: str, *, as_json: bool = False, secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once for the process."""
    handler = logging.StreamHandler()
    redactor = Redactor(secrets)
    inner = JsonFormatter(redactor) if as_json else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(RedactingFormatter(inner, redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "httpx", "httpcore", "zeep"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
