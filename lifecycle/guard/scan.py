"""What every guard scan shares: its time is measured, and an error becomes a failed result.

A scan that could not run has proved nothing, so it fails like one that found a leak, and the
other scans still run. Its error never carries a value, nor the server's text: for the classes
about objects (access rules, connections, resources) it is `describe_db_error`'s SQLSTATE with the
names of the objects involved (which table or column the reader may not read is what an operator
fixes); for any other class only the SQLSTATE and the error's class, since a cast error is about a
value and a planted function chooses what it raises with. Neither the primary message, DETAIL nor
HINT is ever read. SQLAlchemy's own text would carry the statement and its bound parameters (the
HMAC pads, a value being looked for), so it never reaches a log, the terminal or the Dagster UI. An
error that is not the database's is named by its class only.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import ParamSpec

import sqlalchemy as sa

from lifecycle.checks import CheckResult
from lifecycle.db import describe_db_error

P = ParamSpec("P")
# SQLSTATE classes about objects, not values, whose error is worth naming with the objects
# involved: feature not supported, transaction state, connection, rollback, syntax or access rule,
# resources, operator action.
NAMES_ONLY = ("0A", "08", "25", "40", "42", "53", "57")


def reason(exc: sa.exc.StatementError) -> str:
    """Why a statement failed, without statement, parameters or any value."""
    orig = exc.orig
    if orig is None:
        return type(exc).__name__
    sqlstate = getattr(orig, "sqlstate", None) or ""
    if not sqlstate and isinstance(exc, sa.exc.OperationalError):
        # Could not connect (the reader's login, say): libpq's last line names server and role.
        line = str(orig).strip().splitlines()[0].rsplit("FATAL:", 1)[-1].strip()
        return f"could not connect: {line[:200]}"
    if sqlstate[:2] in NAMES_ONLY:
        return describe_db_error(exc)
    return f"{sqlstate or 'error'}: {type(orig).__name__}"


def scan(func: Callable[P, CheckResult]) -> Callable[P, CheckResult]:
    """Times `func`, and returns any error it raises as a failed result naming the reason."""

    @functools.wraps(func)
    def timed(*args: P.args, **kwargs: P.kwargs) -> CheckResult:
        started = time.perf_counter()
        try:
            result = func(*args, **kwargs)
        except sa.exc.StatementError as exc:  # its text carries the statement and parameters
            result = CheckResult(error=reason(exc))
        except Exception as exc:  # noqa: BLE001 - a check that cannot run fails; the rest go on
            result = CheckResult(error=type(exc).__name__)
        result.seconds = time.perf_counter() - started
        return result

    return timed
