"""What a Retarus Voice SOAP fault means: the typed error for a fault's code and texts.

Split from :mod:`.voice_wire` (the data shapes): a fault is classified by SOAP 1.1 fault code
and by two configurable patterns, since the seed (retarus-voice-soap-v3.txt) names no fault codes
of its own for bad credentials or duplicate jobs.
"""

from __future__ import annotations

import re
from typing import Any

from alertline.errors import (
    AuthError,
    DuplicateError,
    ProviderError,
    RejectedError,
    TransientError,
)

DEFAULT_AUTH_FAULT = r"(?i)auth|login|password|credential|unauthori[sz]ed|access denied|forbidden"
DEFAULT_DUPLICATE_FAULT = r"(?i)duplicate"


def _fault_detail(detail: Any) -> tuple[str | None, str]:
    """``(code, text)`` from a fault's ``detail`` element (any shape)."""
    if detail is None or not hasattr(detail, "iter"):
        return None, ""
    code = None
    texts = []
    for element in detail.iter():
        tag = element.tag if isinstance(element.tag, str) else ""
        local = tag.rsplit("}", 1)[-1]
        text = (element.text or "").strip()
        if text and code is None and local.lower() in ("code", "errorcode", "faultcode"):
            code = text
        elif text:
            texts.append(text)
    return code, " ".join(texts)


def fault_error(provider: str, fault_code: str | None, message: str | None, detail: Any, *,
                auth_pattern: str = DEFAULT_AUTH_FAULT,
                duplicate_pattern: str = DEFAULT_DUPLICATE_FAULT) -> ProviderError:
    """The typed error for a SOAP fault: auth → AuthError, Client → RejectedError, Server →
    TransientError (SOAP 1.1 fault codes; the auth and duplicate patterns match the texts)."""
    detail_code, detail_text = _fault_detail(detail)
    kind = (fault_code or "").rsplit(":", 1)[-1]
    text = f"SOAP fault {kind or 'unknown'}: {message or 'no fault string'}"
    code = detail_code or kind or None
    haystack = " ".join(filter(None, (fault_code, message, detail_code, detail_text)))
    if auth_pattern and re.search(auth_pattern, haystack):
        return AuthError(provider, text, code=code, status=500)
    if duplicate_pattern and re.search(duplicate_pattern, haystack):
        return DuplicateError(provider, text, code=code, status=500)
    if kind.lower().startswith(("server", "receiver")):
        return TransientError(provider, text, code=code, status=500)
    return RejectedError(provider, text, code=code, status=500)
