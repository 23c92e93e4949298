"""The store's errors: what any store implementation raises, so no caller sees a driver's own.

A caller of the store (the engine, the daemon, Home Assistant) must be able to tell "try again
later, nothing was kept" from "this work can never be kept" from "the store cannot be opened"
without importing ``sqlite3`` or ``psycopg``: each implementation maps its driver's errors onto
this tree and keeps the driver's error as ``__cause__``.
"""

from __future__ import annotations

from alertline.errors import AlertlineError


class StoreError(AlertlineError):
    """Base of every error a store raises on purpose."""


class StoreUnavailableError(StoreError):
    """The store cannot keep this now (a fault, see
    :func:`~alertline.store.sqlite_faults.is_fault` and
    :func:`~alertline.store.postgres_faults.is_fault`): nothing was committed.

    Whoever handed the work over must not confirm it (no MQTT acknowledgement, no 2xx): the sender
    keeps it and tries again.
    """


class StoreClosedError(StoreError):
    """The store was used after ``close``: a host's shutdown order is wrong. Not an outage
    (nothing to wait for), so it is not a :class:`StoreUnavailableError`."""


class StoreBusyError(StoreError):
    """Another process holds the store."""


class StoreOpenError(StoreError):
    """The store cannot be opened or migrated (a missing directory's permissions, a file that
    is not a database, a migration that fails): the message says which, the cause is the
    driver's error."""


class StoreRejectedError(StoreError):
    """A unit of work the store refuses because of what it holds (an alert id that exists
    already): retrying cannot help, and nothing of that unit was kept."""


class StoreFencedError(StoreUnavailableError):
    """This daemon's cluster lease ran out and another daemon took its alerts over: nothing of
    this work was kept, and nothing more will be (the daemon stops; a new start joins the
    cluster afresh). Like any :class:`StoreUnavailableError`, what it carried is not confirmed:
    the broker or the HTTP client sends it again, to another daemon."""
