"""Which psycopg errors are *faults* (the database's surroundings, retried) rather than the data's.

The outage they start is :class:`~alertline.store.health.StoreHealth`'s, the same for every store
(SQLite's are :mod:`alertline.store.sqlite_faults`). A fault is anything that a later attempt on
another connection can get past without the work changing: the server gone (restart, failover,
network), shutting down, a standby or read-only database, a full disk, too many connections, a
deadlock or serialization failure with another daemon. What the data causes (a duplicate key, a
value the column refuses) is not: retrying cannot help, so it is rejected.
"""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolTimeout, TooManyRequests

from alertline.store.errors import StoreUnavailableError

# SQLSTATE classes and codes (https://www.postgresql.org/docs/current/errcodes-appendix.html)
_FAULT_CLASSES = frozenset({
    "08",  # connection exception
    "40",  # transaction rollback: serialization failure, deadlock (another daemon's work)
    "53",  # insufficient resources: disk full, out of memory, too many connections
    "57",  # operator intervention: admin/crash shutdown, cannot connect now, query canceled
    "58",  # system error: I/O error
    "XX",  # internal error: corrupted data waits for an operator, like SQLite's CORRUPT
})
_FAULT_CODES = frozenset({
    "25006",  # read_only_sql_transaction: a standby, or default_transaction_read_only
    "55P03",  # lock_not_available
    "55006",  # object_in_use
})


def is_fault(error: BaseException) -> bool:
    """Whether ``error`` comes from the database's surroundings (retry later), not the data."""
    if isinstance(error, StoreUnavailableError | OSError | PoolTimeout | TooManyRequests):
        return True
    if not isinstance(error, psycopg.Error):
        return False
    code = error.sqlstate
    if code is None:
        # no answer from the server: the connection failed, broke or was closed under us
        return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)
    return code[:2] in _FAULT_CLASSES or code in _FAULT_CODES
