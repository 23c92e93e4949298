"""Password hashes for the web page's users: scrypt from the standard library.

A hash reads ``scrypt$<log2 n>$<r>$<p>$<salt>$<digest>`` (base64), so its cost is kept with it and
can be raised later without breaking existing hashes. ``alertline hash-password`` prints one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_LOG2_N, _R, _P = 15, 8, 1  # about 32 MiB and a few tens of milliseconds per check
_MAXMEM = 64 * 1024 * 1024


def hash_password(password: str) -> str:
    """A new salted scrypt hash of ``password``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2 ** _LOG2_N, r=_R, p=_P,
                            maxmem=_MAXMEM, dklen=32)
    return "$".join(["scrypt", str(_LOG2_N), str(_R), str(_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def is_password_hash(value: str) -> bool:
    """Whether ``value`` looks like a hash this module made (for the configuration check)."""
    parts = value.split("$")
    return len(parts) == 6 and parts[0] == "scrypt" and all(p.isdigit() for p in parts[1:4])


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time comparison of the digests)."""
    if not is_password_hash(stored):
        return False
    _, log2_n, r, p, salt, digest = stored.split("$")
    try:
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt),
                                n=2 ** int(log2_n), r=int(r), p=int(p), maxmem=_MAXMEM,
                                dklen=len(expected))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)
