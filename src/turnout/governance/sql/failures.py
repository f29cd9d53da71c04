"""Which exceptions mean the database could not be reached or used, as opposed to a refusal.

The gateway answers those with 503 and keeps serving what needs no store (the master key), so
it needs one place that tells an outage (connection refused, a server that went away, a file it
cannot open) from the store's own answers (`NotFoundError`, `ConflictError`, `ValueError`).
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError

#: Raised by the drivers or SQLAlchemy when the database is unreachable or failing.
STORE_FAILURES: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def is_store_failure(error: BaseException) -> bool:
    """Whether `error` says the store is down or broken (not that it refused the request)."""
    return isinstance(error, STORE_FAILURES)


def rejects_rows(error: BaseException) -> bool:
    """Whether `error` says the database refuses the rows written (a value out of its column's
    range or length, a violated constraint): writing them again would fail again."""
    if isinstance(error, (DataError, IntegrityError)):
        return True
    if not isinstance(error, DBAPIError):
        return False
    # asyncpg's errors reach SQLAlchemy as plain DBAPI errors: read their SQLSTATE class
    # (22: data exception, 23: integrity constraint violation).
    cause = error.orig.__cause__ if error.orig is not None else None
    state = getattr(error.orig, "sqlstate", None) or getattr(cause, "sqlstate", None)
    return isinstance(state, str) and state[:2] in ("22", "23")
