"""What both Retarus SMS adapters (REST ``retarus_sms``, HTTP Simple ``retarus_sms_http``) share
about values: the sender id rule, references shortened with a hash, and the case-insensitive
choice validator.

The status vocabulary they share lives in :mod:`._retarus_status`.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Callable
from typing import Any

import voluptuous as vol

from alertline.errors import ValidationError

# Java: (\+|)[0-9]{1,20}|[a-zA-Z0-9\x20\p{Punct}]{1,11}   (retarus-go sms/job.go, spec §4.2)
_SENDER_NUMERIC = re.compile(r"\+?[0-9]{1,20}")
_SENDER_ALPHA = re.compile("[a-zA-Z0-9 " + re.escape(string.punctuation) + "]{1,11}")


REF_HASH_LENGTH = 16  # hex digits of SHA-256 that keep a shortened reference unique


def short_ref(value: str, limit: int = 64) -> str:
    """``value`` as a customerRef of at most ``limit`` characters: unchanged if it fits, else its
    start, ``~`` and a short SHA-256 of the whole, so that it stays deterministic and unique."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:REF_HASH_LENGTH]
    return f"{value[:limit - REF_HASH_LENGTH - 1]}~{digest}"



def check_sender(value: str, field_name: str = "sender") -> str:
    """``value`` if it is a valid Retarus sender id, else :class:`ValidationError`."""
    if _SENDER_NUMERIC.fullmatch(value) or _SENDER_ALPHA.fullmatch(value):
        return value
    raise ValidationError(
        field_name,
        f"invalid sender id {value!r}: use up to 20 digits (optional leading +) or up to "
        "11 characters of a-z, A-Z, 0-9, space and punctuation")


def sender_validator(value: Any) -> str:
    """Voluptuous validator for a sender id."""
    if not isinstance(value, str):
        raise vol.Invalid("expected a string")
    try:
        return check_sender(value)
    except ValidationError as err:
        raise vol.Invalid(err.reason) from None


def one_of(*allowed: str) -> Callable[[Any], str]:
    """Voluptuous validator: one of ``allowed``, any case, returned in canonical spelling."""
    canonical = {value.upper(): value for value in allowed}

    def validate(value: Any) -> str:
        if isinstance(value, str) and value.strip().upper() in canonical:
            return canonical[value.strip().upper()]
        raise vol.Invalid(f"expected one of {', '.join(allowed)}")

    return validate
