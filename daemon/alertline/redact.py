"""One place that keeps secrets out of logs, errors, reports and diagnostics."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "**REDACTED**"

SECRET_KEYS = frozenset({
    "password", "pass", "passwd", "token", "api_key", "apikey", "secret", "authorization",
    "client_secret", "access_token", "webhook_token", "keyfile_password", "password_hash",
})

_QUERY_SECRET = re.compile(r"(?i)\b(pass|password|token|api_key|apikey|secret)=([^&\s\"']+)")
_URL_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)([^/@\s:]+):([^/@\s]+)@")
_AUTH_HEADER = re.compile(r"(?i)\b(basic|bearer|token)\s+[A-Za-z0-9._~+/=-]{8,}")


class Redactor:
    """Scrubs known secret values, and secret-looking patterns, from text and data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Remember ``secret`` so it is masked wherever it appears, also URL-, JSON- or
        XML-escaped (short values are ignored)."""
        if secret and len(secret) >= 3:
            self._secrets.update(form for form in escaped_forms(secret) if len(form) >= 3)

    def text(self, value: str) -> str:
        """``value`` with every secret masked."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            value = value.replace(secret, MASK)
        return redact_text(value)

    def data(self, value: Any) -> Any:
        """A copy of ``value`` (dicts, lists, strings) with secrets masked."""
        return _redact_data(value, self.text)


def escaped_forms(secret: str) -> set[str]:
    """``secret`` as it may appear in a URL, a form body, a JSON string or XML text: a secret
    with ``&``, ``"``, ``/``, ``<``, spaces or non-ASCII letters is no longer itself there."""
    url = {quote(secret, safe=""), quote(secret), quote_plus(secret), quote_plus(secret, safe="/")}
    url |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), form) for form in url}
    as_json = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    as_json |= {form.replace("/", "\\/") for form in as_json}
    as_json |= {re.sub(r"\\u[0-9a-f]{4}", lambda m: "\\u" + m.group(0)[2:].upper(), form)
                for form in as_json}
    as_xml = {html.escape(secret, quote=False), html.escape(secret),
              html.escape(secret).replace("&#x27;", "&apos;"),
              html.escape(secret).replace("&#x27;", "&#39;").replace("&quot;", "&#34;")}
    return {secret} | url | as_json | as_xml


def redact_text(value: str) -> str:
    """Mask secret-looking parts of ``value``: URL credentials, query secrets, auth headers."""
    value = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{m.group(2)}:{MASK}@", value)
    value = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}={MASK}", value)
    return _AUTH_HEADER.sub(lambda m: f"{m.group(1)} {MASK}", value)


def redact_mapping(value: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``value`` with every secret-named key masked, recursively."""
    result = _redact_data(value, redact_text)
    assert isinstance(result, dict)
    return result


def _redact_data(value: Any, scrub: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            key: (MASK if isinstance(key, str) and key.lower() in SECRET_KEYS and item
                  else _redact_data(item, scrub))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_data(item, scrub) for item in value]
    if isinstance(value, str):
        return scrub(value)
    return value
