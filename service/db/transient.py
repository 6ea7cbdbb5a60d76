"""Database errors of the moment: the transaction failed because of what ran beside it, not
because of the request, so the request may be sent again as it was (`TransientFailure`, a 503
with `Retry-After` on both APIs, `transient` on `/fhir`).

- PostgreSQL SQLSTATE `40P01` deadlock_detected: two transactions waited for each other's
  locks and the server ended one of them; `40001` serialization_failure: a concurrent
  transaction's change made this one's impossible to order (PostgreSQL, Appendix A "Error
  Codes", class 40 "Transaction Rollback"; sections 13.2 and 13.3.4: the application retries
  such a transaction).
- SQLite `SQLITE_BUSY` ("database is locked"): another process held the one write lock past
  the busy timeout (`service.db.session`).

Through SQLAlchemy's asyncpg adapter the driver's error is `DBAPIError.orig`, with the
SQLSTATE as `sqlstate` (and `pgcode`), and asyncpg's own exception as its `__cause__`;
sqlite3's error is `orig` itself, with `sqlite_errorcode`."""

from __future__ import annotations

import logging
import sqlite3

from sqlalchemy.exc import DBAPIError

from service.errors import TransientFailure

log = logging.getLogger(__name__)

DEADLOCK_DETECTED = "40P01"
SERIALIZATION_FAILURE = "40001"

_POSTGRES: dict[str, str] = {
    DEADLOCK_DETECTED: "the database ended this request's transaction to break a deadlock "
    "with a concurrent one",
    SERIALIZATION_FAILURE: "a concurrent change made this request's transaction impossible "
    "to complete as it ran",
}
_SQLITE_BUSY = "the database stayed locked by another process's write for too long"


def sqlstate(error: DBAPIError) -> str | None:
    """The SQLSTATE the driver reported, wherever this driver keeps it."""
    for source in (error.orig, getattr(error.orig, "__cause__", None)):
        for attribute in ("sqlstate", "pgcode"):
            code = getattr(source, attribute, None)
            if isinstance(code, str):
                return code
    return None


def transient_failure(error: DBAPIError) -> TransientFailure | None:
    """The 503 a transient database error is answered with; None for any other error."""
    code = sqlstate(error)
    why = _POSTGRES.get(code or "")
    if why is None and _sqlite_busy(error.orig):
        why = _SQLITE_BUSY
    if why is None:
        return None
    # The type and code only: a database error's text carries the rows' parameters.
    log.warning("answered 503 to retry: %s (%s)", type(error.orig).__name__, code)
    return TransientFailure(f"{why}; it was rolled back, and the request may be sent again")


def _sqlite_busy(orig: BaseException | None) -> bool:
    # The primary result code is the low byte (extended codes such as SQLITE_BUSY_SNAPSHOT).
    code = getattr(orig, "sqlite_errorcode", None) if isinstance(orig, sqlite3.Error) else None
    return isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_BUSY
