"""Old planner statistics: ANALYZE keeps a column's most common values and histogram bounds in
pg_statistic, so an ANALYZE run before the purge (autovacuum's, or the shop's own) leaves purged
values there. The erasure's `VACUUM (FULL, ANALYZE)` writes fresh rows from the cleared tables;
the earlier rows become dead versions in pg_statistic's own files until pg_statistic is rewritten.

PostgreSQL lets a superuser or the database's owner rewrite pg_statistic (not a shared catalog);
from PostgreSQL 17 also a holder of MAINTAIN on it. Where the job's user may not, the step says so
and a DBA runs `VACUUM FULL pg_catalog.pg_statistic` (docs/retention.md). The rewrite takes an
ACCESS EXCLUSIVE lock on pg_statistic, which every query planned meanwhile in this database
waits for: it is small (milliseconds here) and bounded by the same lock timeout.

A rewrite that cannot run (a snapshot that may still read the old rows, the lock not granted, no
privilege) is owed: every outcome is recorded in lifecycle.statistics_erasures with the time since
which the statistics have held cleared values (migration 0160), the erasure retries on every night
until one is `rewritten`, and until then pg_statistic is a pending erasure like a table, shown in
the report and held to `erasure_deadline_hours` (lifecycle.retention.backlog).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.db import describe_db_error
from lifecycle.retention import horizon

_ALLOWED = sa.text("""
    SELECT pg_has_role(current_user, d.datdba, 'USAGE')
           OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
    FROM pg_database d WHERE d.datname = current_database()
""")
REWRITTEN = "rewritten"
RELATION = "pg_catalog.pg_statistic"  # how a pending rewrite of it is named among the tables
# A fresh transaction id: newer than the ANALYZE that just replaced the statistics' rows.
_NOW_XID = sa.text("SELECT CAST(xid(pg_current_xact_id()) AS text)")
LOCK_NOT_AVAILABLE = "55P03"


def erase_old_statistics(conn: Connection, timeout: float) -> str:
    """Rewrites pg_statistic after the tables were analyzed; returns what happened, in words a DBA
    can act on (never a value). `conn` is in autocommit with the erasure's lock timeout set."""
    if not conn.execute(_ALLOWED).scalar():
        return (
            "not rewritten: only a superuser or the database owner may; a DBA runs "
            "VACUUM FULL pg_catalog.pg_statistic after the nightly"
        )
    newest = conn.execute(_NOW_XID).scalar_one()
    deadline = time.monotonic() + timeout
    while held := horizon.holders(conn, newest, catalog=True):
        if time.monotonic() >= deadline:
            return f"pending: {len(held)} snapshot(s) may still read old statistics ({held[0]})"
        time.sleep(0.2)
    try:
        conn.execute(sa.text("VACUUM FULL pg_catalog.pg_statistic"))
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            return f"pending: lock on pg_statistic not granted within {timeout} s"
        return f"not rewritten: {describe_db_error(exc)}"
    return REWRITTEN


_RECORD = sa.text("""
    INSERT INTO lifecycle.statistics_erasures (run_id, outcome, owed_since)
    VALUES (:run_id, :outcome, :owed_since)
""")
_LATEST = sa.text("""
    SELECT outcome, owed_since FROM lifecycle.statistics_erasures
    ORDER BY statistics_erasure_id DESC LIMIT 1
""")


@dataclass(frozen=True)
class Owed:
    """A rewrite of pg_statistic not done yet: since when it has held cleared values, and why the
    last attempt did not rewrite it."""

    since: datetime
    outcome: str


def owed(conn: Connection) -> Owed | None:
    """The rewrite of pg_statistic still owed, or None when the last attempt rewrote it."""
    row = conn.execute(_LATEST).first()
    if row is None or row.outcome == REWRITTEN:
        return None
    return Owed(row.owed_since, row.outcome)


def record(conn: Connection, run_id: str, outcome: str, owed_since: datetime) -> None:
    """Records an attempt; `owed_since` is when its statistics began to hold cleared values (the
    earliest of a still-owed rewrite's and tonight's)."""
    earlier = owed(conn)
    since = min(owed_since, earlier.since) if earlier else owed_since
    conn.execute(_RECORD, {"run_id": run_id, "outcome": outcome, "owed_since": since})
