"""Physical erasure: purged values leave the data files, not just the visible rows.

An UPDATE writes a new row version and leaves the old one on disk; plain VACUUM marks its space
free but leaves the bytes readable in the page. `VACUUM FULL` rewrites the table, its TOAST and
its indexes into new files and unlinks the old ones, so the purged values are gone from every
file PostgreSQL keeps for the table. It holds an ACCESS EXCLUSIVE lock while it runs (about a
second per million orders here; see bench/RESULTS.md), so it waits at most
`erasure_lock_timeout_seconds` and, failing that, stays pending for the next run.
A rewrite also keeps every row version that some open snapshot can still see, so it first waits
(within the same timeout) for transactions older than itself to end, and refuses otherwise:
reporting an erasure that left the values on disk would be worse than reporting none.
Copies that remain for a bounded time (WAL, backups) are described in docs/retention.md.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.db import describe_db_error
from lifecycle.policy import Policy
from lifecycle.tables import HANDOFF_TABLE, REQUESTS_TABLE


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
    return [
        policy.raw.orders.table,
        policy.raw.after_sales_cases.table,
        HANDOFF_TABLE,
        REQUESTS_TABLE,
    ]


_PENDING = sa.text("""
    SELECT EXISTS (
        SELECT 1 FROM lifecycle.purge_ledger
        WHERE recorded_at >= coalesce((SELECT max(started_at) FROM lifecycle.erasure_runs), '-infinity')
    )
""")
_SIZE = sa.text(
    "SELECT CAST(coalesce(sum(pg_total_relation_size(CAST(t AS regclass))), 0) AS bigint) FROM unnest(CAST(:tables AS text[])) t"
)
_RECORD = sa.text("""
    INSERT INTO lifecycle.erasure_runs
        (run_id, started_at, finished_at, mechanism, tables, bytes_before, bytes_after)
    VALUES (:run_id, :started_at, now(), 'vacuum_full', :tables, :before, :after)
""")


# Transactions that may still see rows as they were before the purge. VACUUM FULL must copy
# every row version such a snapshot can see, so the old values would survive the rewrite: a
# snapshot in this database, or any older transaction holding an xid anywhere in the cluster
# (the rewrite's own snapshot starts at the cluster's oldest running xid).
_OLDER_SNAPSHOTS = sa.text("""
    SELECT 'pid ' || pid || ' in database ' || coalesce(datname, '-') || ' ('
           || coalesce(nullif(application_name, ''), backend_type)
           || ', transaction open since ' || to_char(xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC)'
    FROM pg_stat_activity
    WHERE pid <> pg_backend_pid() AND xact_start < :since
      AND ((datname = current_database() AND backend_xmin IS NOT NULL) OR backend_xid IS NOT NULL)
    UNION ALL
    SELECT 'prepared transaction ' || gid FROM pg_prepared_xacts WHERE prepared < :since
    UNION ALL
    SELECT 'replication slot ' || slot_name FROM pg_replication_slots
    WHERE xmin IS NOT NULL AND (database IS NULL OR database = current_database())
""")


class _KeptVersions:
    """Reads VACUUM VERBOSE's report: "N dead row versions cannot be removed yet" means the
    rewrite copied old versions (with their values) into the new files."""

    _PATTERN = re.compile(r"(\d+) dead row versions cannot be removed yet")

    def __init__(self, conn):
        self.count = 0
        self._driver = conn.connection.driver_connection

    def __enter__(self) -> _KeptVersions:
        self._driver.add_notice_handler(self._on_notice)
        return self

    def __exit__(self, *exc) -> None:
        self._driver.remove_notice_handler(self._on_notice)

    def _on_notice(self, diag) -> None:
        text = f"{diag.message_primary or ''} {diag.message_detail or ''}"
        self.count += sum(int(n) for n in self._PATTERN.findall(text))


def _wait_for_older_snapshots(conn, since: datetime, timeout: float) -> None:
    """Waits until no transaction begun before `since` can still see pre-purge row versions."""
    deadline = time.monotonic() + timeout
    while True:
        holders = conn.execute(_OLDER_SNAPSHOTS, {"since": since}).scalars().all()
        if not holders:
            return
        if time.monotonic() >= deadline:
            raise ErasureError(
                f"not rewriting: {len(holders)} older snapshot(s) can still see the purged rows, and a "
                f"rewrite would have to keep their old versions on disk: {'; '.join(holders[:5])}. "
                "Purged fields are cleared; physical erasure stays pending and the next run retries. "
                "End the long transaction, or raise retention.erasure_lock_timeout_seconds."
            )
        time.sleep(0.2)


def erasure_pending(engine: Engine) -> bool:
    """True when some order was purged since the last rewrite began."""
    with engine.connect() as conn:
        return bool(conn.execute(_PENDING).scalar())


def erase_purged_storage(
    engine: Engine, policy: Policy, run_id: str, force: bool = False
) -> ErasureReport:
    """Rewrites the purged tables when anything was purged since the last rewrite."""
    if policy.retention.physical_erasure == "none":
        return ErasureReport(
            ran=False, reason="disabled by policy (retention.physical_erasure: none)"
        )
    if not force and not erasure_pending(engine):
        return ErasureReport(ran=False, reason="nothing purged since the last rewrite")
    tables = erasure_tables(policy)
    started_at = datetime.now(UTC)
    clock = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        before = conn.execute(_SIZE, {"tables": tables}).scalar_one()
        _wait_for_older_snapshots(conn, started_at, policy.retention.erasure_lock_timeout_seconds)
        conn.execute(
            sa.text(f"SET lock_timeout = '{int(policy.retention.erasure_lock_timeout_seconds)}s'")
        )
        try:  # the timeout is a session setting: never hand it back to the pool
            for table in tables:
                schema, name = table.split(".")
                try:
                    with _KeptVersions(conn) as kept:
                        conn.execute(
                            sa.text(f'VACUUM (FULL, ANALYZE, VERBOSE) "{schema}"."{name}"')
                        )
                except sa.exc.DBAPIError as exc:
                    raise ErasureError(
                        f"could not rewrite {table}: {describe_db_error(exc)}. Purged fields are cleared but "
                        "their old row versions remain on disk; the next run retries. If a long transaction "
                        "holds the table, end it or raise retention.erasure_lock_timeout_seconds."
                    ) from None
                if kept.count:
                    raise ErasureError(
                        f"the rewrite of {table} kept {kept.count} old row version(s) that a concurrent "
                        "snapshot could still see, so purged values may remain on disk. Physical erasure "
                        "stays pending and the next run retries; look for long transactions on the server."
                    )
        finally:
            conn.execute(sa.text("RESET lock_timeout"))
        after = conn.execute(_SIZE, {"tables": tables}).scalar_one()
        conn.execute(
            _RECORD,
            {
                "run_id": run_id,
                "started_at": started_at,
                "tables": tables,
                "before": before,
                "after": after,
            },
        )
    return ErasureReport(
        ran=True,
        reason="rewrote purged tables",
        tables=tables,
        seconds=time.perf_counter() - clock,
        bytes_before=before,
        bytes_after=after,
    )
