"""How a request whose handling failed is named, and whether trying again could help: never a value."""

from __future__ import annotations

import sqlalchemy as sa

from lifecycle.db import describe_db_error
from lifecycle.retention.coverage import PolicyCoverageError
from lifecycle.retention.purge import PurgeError

# SQLSTATE classes an unchanged request meets again on every retry: a value the column's type
# refuses (22), a constraint (23), a shop trigger's RAISE (P0), a missing object or privilege (42),
# an unsupported feature (0A), a function's own error (2F, 39). Anything else (a lost connection,
# a deadlock, a lock timeout, a full disk) may pass, so the request stays open for the next run.
PERMANENT_SQLSTATE_CLASSES = ("22", "23", "P0", "42", "0A", "2F", "39")


def describe_failure(exc: Exception) -> str:
    """Class and code of the error only: neither the driver's DETAIL nor a file's content may reach a log."""
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return describe_db_error(exc)
    if isinstance(exc, OSError):
        return f"{type(exc).__name__} (errno {exc.errno}: {exc.strerror})"
    if isinstance(exc, PurgeError | PolicyCoverageError):
        return str(exc)  # built from describe_db_error, order ids and column names only
    return type(exc).__name__  # an unexpected error's text may quote what it was handling


def sqlstate(exc: Exception) -> str | None:
    """The SQLSTATE of a database error (kept by a purge batch that rolled back), else None."""
    if isinstance(exc, PurgeError):
        return exc.sqlstate
    return getattr(getattr(getattr(exc, "orig", None), "diag", None), "sqlstate", None)


def retry_may_help(exc: Exception) -> bool:
    """False when the same request would fail the same way again, so it is answered `failed`.

    Database errors, a purge batch's among them, are judged by SQLSTATE class; file errors may
    pass on their own; any other exception is an error in handling this input, and repeats.
    """
    if isinstance(exc, sa.exc.SQLAlchemyError | PurgeError):
        state = sqlstate(exc)
        return not (state and state[:2] in PERMANENT_SQLSTATE_CLASSES)
    # A policy that leaves a personal column out is fixed by its owner: the request stays open.
    return isinstance(exc, OSError | PolicyCoverageError)
