"""How a request whose handling failed is named in a report and a log: never a value."""

from __future__ import annotations

import sqlalchemy as sa

from lifecycle.db import describe_db_error


def describe_failure(exc: Exception) -> str:
    """Class and code of the error only: neither the driver's DETAIL nor a file's content may reach a log."""
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return describe_db_error(exc)
    if isinstance(exc, OSError):
        return f"{type(exc).__name__} (errno {exc.errno}: {exc.strerror})"
    return str(exc)
