"""What every guard scan shares: its time is measured, and a database error becomes a failed result.

A scan that could not run has proved nothing, so it fails like one that found a leak; its error
names the database's SQLSTATE and primary message only. SQLAlchemy's own text would carry the
statement and its bound parameters (the HMAC pads, a value being looked for), so it never reaches
a log, the terminal or the Dagster UI.
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
DATA_EXCEPTION = "22"  # SQLSTATE class whose messages quote the offending value


def _reason(exc: sa.exc.StatementError) -> str:
    """Why a statement failed, without statement, parameters or (for a data exception) the value."""
    orig = exc.orig
    if orig is None:
        return type(exc).__name__
    sqlstate = getattr(orig, "sqlstate", None) or ""
    if sqlstate.startswith(DATA_EXCEPTION):  # "invalid input syntax for type integer: "Wang Fang""
        return f"{sqlstate}: {type(orig).__name__}"
    return describe_db_error(exc)


def scan(func: Callable[P, CheckResult]) -> Callable[P, CheckResult]:
    """Times `func`, and returns a database error it raises as a failed result naming the reason."""

    @functools.wraps(func)
    def timed(*args: P.args, **kwargs: P.kwargs) -> CheckResult:
        started = time.perf_counter()
        try:
            result = func(*args, **kwargs)
        except sa.exc.StatementError as exc:  # its text carries the statement and parameters
            result = CheckResult(error=_reason(exc))
        result.seconds = time.perf_counter() - started
        return result

    return timed
