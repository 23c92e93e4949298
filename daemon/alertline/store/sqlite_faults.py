"""Which SQLite errors are *faults* (the store's surroundings, retried) rather than the data's.

The outage they start is :class:`~alertline.store.health.StoreHealth`'s, the same for every store;
a PostgreSQL store classifies psycopg's errors in a module of its own.
"""

from __future__ import annotations

import sqlite3

from alertline.store.errors import StoreUnavailableError

# SQLite's primary result codes for trouble with the file rather than with what is written
# (https://sqlite.org/rescode.html). A corrupt file does not heal by itself, but waiting for an
# operator is still right: confirming what was not kept is not.
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOMEM, SQLITE_READONLY = 3, 5, 6, 7, 8
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL = 10, 11, 13, 14, 15
SQLITE_NOTADB = 26
_FAULT_CODES = frozenset({SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOMEM, SQLITE_READONLY,
                          SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN,
                          SQLITE_PROTOCOL, SQLITE_NOTADB})
_FAULT_WORDS = ("disk", "full", "readonly", "read-only", "locked", "busy", "unable to open")


def is_fault(error: BaseException) -> bool:
    """Whether ``error`` comes from the store's surroundings (retry later), not from the data."""
    if isinstance(error, StoreUnavailableError | OSError):
        return True
    if isinstance(error, sqlite3.OperationalError | sqlite3.DatabaseError) and \
            not isinstance(error, sqlite3.IntegrityError | sqlite3.ProgrammingError):
        code = getattr(error, "sqlite_errorcode", None)
        if code is not None:
            return (int(code) & 0xFF) in _FAULT_CODES
        text = str(error).lower()
        return any(word in text for word in _FAULT_WORDS)
    return False
