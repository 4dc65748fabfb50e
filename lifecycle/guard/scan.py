"""What every guard scan shares: its time is measured, and an error becomes a failed result.

A scan that could not run has proved nothing, so it fails like one that found a leak, and the
other scans still run. Its error names the database's SQLSTATE and, for the classes whose
messages name objects only (access rules, connections, resources), the primary message; any
other class may quote a value (a cast error quotes the offending text, a planted function can
raise with whatever it read), so only the SQLSTATE and the error's class are kept. SQLAlchemy's
own text would carry the statement and its bound parameters (the HMAC pads, a value being looked
for), so it never reaches a log, the terminal or the Dagster UI. An error that is not the
database's is named by its class only.
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
# SQLSTATE classes whose primary messages name objects, never a value: feature not supported,
# transaction state, connection, rollback, syntax or access rule, resources, operator action.
NAMES_ONLY = ("0A", "08", "25", "40", "42", "53", "57")


def reason(exc: sa.exc.StatementError) -> str:
    """Why a statement failed, without statement, parameters or any value."""
    orig = exc.orig
    if orig is None:
        return type(exc).__name__
    sqlstate = getattr(orig, "sqlstate", None) or ""
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
