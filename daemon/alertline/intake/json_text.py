"""JSON from outside (MQTT payloads, webhooks, postbacks) parsed without deep recursion.

``json.loads`` recurses once per level of nesting, so a payload of a hundred thousand ``[``
meets Python's recursion limit inside the parser. Catching that ``RecursionError`` is not
enough: whatever else runs at that depth (a finalizer, a log handler) fails too. The depth is
therefore counted first, without recursion, and a payload nested deeper than any request needs
is refused before it is parsed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from alertline.errors import ValidationError

MAX_JSON_DEPTH = 64
"""Levels of ``[``/``{`` a payload may have (a request's own values may nest 32 levels)."""

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def nested_deeper_than(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``text`` opens more than ``limit`` arrays and objects inside each other (what
    is inside strings does not count)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for bracket in _BRACKET.finditer(_STRING.sub("", text)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > limit:
            return True
    return False


def load_json(text: str | bytes) -> Any:
    """``text`` parsed (bytes in the encoding ``json.loads`` would detect); a
    :class:`ValidationError` of field ``payload`` for text that cannot be decoded (code
    ``encoding``), malformed JSON, a number beyond Python's digit limit, or nesting beyond
    :data:`MAX_JSON_DEPTH` (code ``json``)."""
    if isinstance(text, bytes):
        try:
            text = text.decode(json.detect_encoding(text))
        except UnicodeDecodeError as err:
            raise ValidationError("payload", f"not valid text (byte {err.start})",
                                  code="encoding") from None
    if nested_deeper_than(text):
        raise ValidationError("payload", "JSON nested too deeply", code="json")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValidationError("payload", f"malformed JSON: {err.msg} at line {err.lineno} "
                              f"column {err.colno}", code="json") from None
    except ValueError as err:  # e.g. an integer literal beyond Python's digit limit
        raise ValidationError("payload", f"malformed JSON: {err}", code="json") from None
