"""Physical erasure: purged values leave the data files, not just the visible rows.

An UPDATE writes a new row version and leaves the old one on disk; plain VACUUM marks its space
free but leaves the bytes readable in the page. `VACUUM FULL` rewrites the table, its TOAST and
its indexes into new files and unlinks the old ones, so the purged values are gone from every
file PostgreSQL keeps for the table. It holds an ACCESS EXCLUSIVE lock while it runs (about a
second per million orders here; see bench/RESULTS.md), so it waits at most
`erasure_lock_timeout_seconds` and, failing that, stays pending for the next run.
Copies that remain for a bounded time (WAL, backups) are described in docs/retention.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.db import describe_db_error
from lifecycle.logistics import HANDOFF_TABLE
from lifecycle.policy import Policy
from lifecycle.requests import REQUESTS_TABLE


class ErasureError(RuntimeError):
    """The rewrite could not run; purged rows stay logically cleared and erasure stays pending."""


@dataclass
class ErasureReport:
    """Whether the rewrite ran, over which tables, and what it cost."""

    ran: bool
    reason: str
    tables: list[str] = field(default_factory=list)
    seconds: float = 0.0
    bytes_before: int = 0
    bytes_after: int = 0

    def metadata(self) -> dict[str, object]:
        return {
            "ran": self.ran,
            "reason": self.reason,
            "tables": self.tables,
            "seconds": round(self.seconds, 3),
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
        }


def erasure_tables(policy: Policy) -> list[str]:
    """Every table whose purged values must leave the disk (the carrier hand-off keeps copies; a
    correction's payload is redacted once answered, and its old row version must go too)."""
    return [policy.raw.orders.table, policy.raw.after_sales_cases.table, HANDOFF_TABLE, REQUESTS_TABLE]


_PENDING = sa.text("""
    SELECT EXISTS (
        SELECT 1 FROM lifecycle.purge_ledger
        WHERE recorded_at >= coalesce((SELECT max(started_at) FROM lifecycle.erasure_runs), '-infinity')
    )
""")
_SIZE = sa.text("SELECT CAST(coalesce(sum(pg_total_relation_size(CAST(t AS regclass))), 0) AS bigint) FROM unnest(CAST(:tables AS text[])) t")
_RECORD = sa.text("""
    INSERT INTO lifecycle.erasure_runs
        (run_id, started_at, finished_at, mechanism, tables, bytes_before, bytes_after)
    VALUES (:run_id, :started_at, now(), 'vacuum_full', :tables, :before, :after)
""")


def erasure_pending(engine: Engine) -> bool:
    """True when some order was purged since the last rewrite began."""
    with engine.connect() as conn:
        return bool(conn.execute(_PENDING).scalar())


def erase_purged_storage(engine: Engine, policy: Policy, run_id: str, force: bool = False) -> ErasureReport:
    """Rewrites the purged tables when anything was purged since the last rewrite."""
    if policy.retention.physical_erasure == "none":
        return ErasureReport(ran=False, reason="disabled by policy (retention.physical_erasure: none)")
    if not force and not erasure_pending(engine):
        return ErasureReport(ran=False, reason="nothing purged since the last rewrite")
    tables = erasure_tables(policy)
    started_at = datetime.now(timezone.utc)
    clock = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        before = conn.execute(_SIZE, {"tables": tables}).scalar_one()
        conn.execute(sa.text(f"SET lock_timeout = '{int(policy.retention.erasure_lock_timeout_seconds)}s'"))
        for table in tables:
            schema, name = table.split(".")
            try:
                conn.execute(sa.text(f'VACUUM (FULL, ANALYZE) "{schema}"."{name}"'))
            except sa.exc.DBAPIError as exc:
                raise ErasureError(
                    f"could not rewrite {table}: {describe_db_error(exc)}. Purged fields are cleared but "
                    "their old row versions remain on disk; the next run retries. If a long transaction "
                    "holds the table, end it or raise retention.erasure_lock_timeout_seconds."
                ) from None
        conn.execute(sa.text("RESET lock_timeout"))
        after = conn.execute(_SIZE, {"tables": tables}).scalar_one()
        conn.execute(_RECORD, {"run_id": run_id, "started_at": started_at, "tables": tables,
                               "before": before, "after": after})
    return ErasureReport(ran=True, reason="rewrote purged tables", tables=tables,
                         seconds=time.perf_counter() - clock, bytes_before=before, bytes_after=after)
