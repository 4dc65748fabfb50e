"""Physical erasure: cleared values leave the data files, not just the visible rows.

An UPDATE writes a new row version and leaves the old one on disk; plain VACUUM marks its space
free but leaves the bytes readable in the page. `VACUUM FULL` rewrites the table, its TOAST and
its indexes into new files and unlinks the old ones; where the shop database has pg_repack, the
rewrite runs online instead (lifecycle/retention/repack.py). Only the tables, or partitions, with
changes since their own last rewrite are rewritten (lifecycle/retention/backlog.py). A VACUUM FULL
holds an ACCESS EXCLUSIVE lock for its duration, waited for at most `erasure_lock_timeout_seconds`.

A rewrite must copy every row version some snapshot can still see, so it first waits (within the
same timeout) for exactly the snapshots that hold those versions back (lifecycle/retention/
horizon.py). If they are still there, or a lock is not granted, the erasure stays *pending*: it is
recorded in lifecycle.erasure_waits, the night succeeds, the next run retries, and the asset check
`erasure_within_deadline` fails only once cleared values have stayed on disk longer than
`erasure_deadline_hours`. After a rewrite, ANALYZE refreshes the statistics and pg_statistic is
rewritten too, where the job's user may (lifecycle/retention/statistics.py).
Copies that remain for a bounded time (WAL, backups) are described in docs/retention.md.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.db import describe_db_error
from lifecycle.policy import Policy
from lifecycle.retention import backlog, horizon, repack, statistics
from lifecycle.retention.backlog import PendingErasure, pending_erasures

__all__ = ["ErasureError", "ErasureReport", "erase_purged_storage", "pending_erasures"]

LOCK_NOT_AVAILABLE = "55P03"


class ErasureError(RuntimeError):
    """The rewrite failed for a reason waiting will not fix (e.g. the job's user may not vacuum)."""


NOTHING_CLEARED = "nothing cleared since the last rewrite"
NOT_NEEDED = "not needed"  # the statistics' rewrite on a night that rewrote no table
# What a night that cleared nothing writes to the run log, which a first night (it rewrites) does
# not: the guard's run-history check compares them on any night (lifecycle/guard/raw_values.py),
# so the first such night meets none of them new.
REGULAR_TEXTS = (NOTHING_CLEARED, NOT_NEEDED)


@dataclass
class ErasureReport:
    """Whether the rewrite ran, over which tables, what waits, and what it cost."""

    ran: bool
    reason: str
    tables: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    waiting_for: list[str] = field(default_factory=list)
    mechanism: str = ""
    statistics: str = NOT_NEEDED
    dead_versions_kept: int = 0
    seconds: float = 0.0
    # Where the time went, so a slow night says whether it waited for other sessions or rewrote:
    # "waiting" (older snapshots), "rewrite <relation>" each, "statistics" (pg_statistic).
    step_seconds: dict[str, float] = field(default_factory=dict)
    bytes_before: int = 0
    bytes_after: int = 0

    def metadata(self) -> dict[str, object]:
        """Table names, counts and process ids; never a value."""
        return {
            "ran": self.ran,
            "reason": self.reason,
            "tables": self.tables,
            "pending_tables": self.pending,
            "waiting_for": self.waiting_for[:5],
            "mechanism": self.mechanism,
            "statistics": self.statistics,
            "dead_versions_kept": self.dead_versions_kept,
            "seconds": round(self.seconds, 3),
            "step_seconds": {k: round(v, 3) for k, v in self.step_seconds.items()},
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
        }


def _personal_columns(policy: Policy) -> list[str]:
    """Every personal column of the raw zone, as schema.table.column."""
    return [
        f"{spec.table}.{column}"
        for spec in policy.raw.tables().values()
        for column in spec.personal_columns
    ]


def erasure_tables(policy: Policy) -> list[str]:
    """Every table whose cleared values must leave the disk (the carrier hand-off keeps copies; a
    request's payload is redacted once answered, and its old row version must go too)."""
    return [source.table for source in backlog.sources(policy)]


_SIZE = sa.text(
    "SELECT CAST(coalesce(sum(pg_total_relation_size(CAST(t AS regclass))), 0) AS bigint) FROM unnest(CAST(:tables AS text[])) t"
)
_NEWEST = sa.text(
    "SELECT CAST(x AS text) FROM unnest(CAST(:xids AS xid[])) x ORDER BY age(x) LIMIT 1"
)
# Every change recorded (by its transaction's start time) before `covers_until` had committed when
# the rewrites began: no transaction of this database older than it was still open.
_COVERAGE = sa.text("""
    SELECT least(clock_timestamp(), (SELECT min(xact_start) FROM pg_stat_activity
                                     WHERE datname = current_database() AND pid <> pg_backend_pid())),
           CAST(pg_snapshot_xmin(pg_current_snapshot()) AS text)
""")
_RECORD = sa.text("""
    INSERT INTO lifecycle.erasure_runs
        (run_id, started_at, finished_at, mechanism, tables, bytes_before, bytes_after,
         covers_until, horizon_xid)
    VALUES (:run_id, :started_at, now(), :mechanism, :tables, :before, :after,
            :covers_until, CAST(:horizon AS xid8))
""")
# A table found owing nothing is covered up to the bound taken before its changes were read, as a
# rewrite would be (backlog._LATEST_MARK): the next night reads only the changes since.
_NOTHING_OWED = sa.text("""
    INSERT INTO lifecycle.erasure_checks (relation, covers_until, horizon_xid, run_id)
    SELECT relation, :covers_until, CAST(:horizon AS xid8), :run_id
    FROM unnest(CAST(:relations AS text[])) AS relation
    ON CONFLICT (relation) DO UPDATE SET covers_until = EXCLUDED.covers_until,
        horizon_xid = EXCLUDED.horizon_xid, run_id = EXCLUDED.run_id, checked_at = now()
""")
_RECORD_WAIT = sa.text("""
    INSERT INTO lifecycle.erasure_waits (run_id, relations, cleared_since, waiting_for)
    VALUES (:run_id, :relations, :cleared_since, :waiting_for)
""")


class _KeptVersions:
    """Reads VACUUM VERBOSE's "N dead row versions cannot be removed yet": versions the rewrite had
    to copy. After the horizon wait these belong to changes newer than the erasure's (concurrent
    writes of the shop), so the count is reported, not treated as a failure."""

    _PATTERN = re.compile(r"(\d+) dead row versions cannot be removed yet")

    def __init__(self, conn: Connection):
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


def wait_for_horizon(
    conn: Connection,
    newest_xid: str,
    timeout: float,
    catalog: bool = False,
    this_database_only: bool = False,
) -> list[str]:
    """Waits up to `timeout` seconds until no snapshot holds back versions of `newest_xid`; returns
    what still does (empty when the rewrite may run)."""
    deadline = time.monotonic() + timeout
    while True:
        held = horizon.holders(
            conn, newest_xid, catalog=catalog, this_database_only=this_database_only
        )
        if not held or time.monotonic() >= deadline:
            return held
        time.sleep(0.2)


def _rewrite(conn: Connection, table: str) -> int:
    """VACUUM FULL of one table; returns the dead versions it had to keep. Raises on a lock timeout."""
    schema, name = table.split(".")
    with _KeptVersions(conn) as kept:
        conn.execute(sa.text(f'VACUUM (FULL, ANALYZE, VERBOSE) "{schema}"."{name}"'))
    return kept.count


# A partitioned table's own statistics (stainherit) sample its partitions; a partition's rewrite
# refreshes only the partition's. Autovacuum never analyzes a partitioned table, so they exist only
# where someone ran ANALYZE on it (a database-wide ANALYZE does), and then may hold purged values:
# the personal columns holding them are refreshed. Only their columns: the others hold no value
# the purge clears.
_INHERITED_STATS = sa.text("""
    SELECT format('%I.%I', n.nspname, c.relname), array_agg(DISTINCT s.attname ORDER BY s.attname)
    FROM unnest(CAST(:tables AS text[])) t
    JOIN pg_class c ON c.oid = pg_partition_root(CAST(t AS regclass))
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.inherited
    WHERE format('%I.%I', n.nspname, c.relname) || '.' || s.attname = ANY(CAST(:personal AS text[]))
    GROUP BY 1 ORDER BY 1
""")
# From PostgreSQL 18 `ANALYZE ONLY` samples the partitions for the partitioned table's statistics
# without analyzing each partition as well; before, ANALYZE of a partitioned table analyzes every
# partition too, which on the 1M bench shop (20 partitions, PostgreSQL 15) took 2.0-2.3 s a night,
# about a read of the whole table (each partition smaller than a sample reads all its pages).
_ANALYZE_ONLY_FROM = 180000


def _analyze_partitioned(conn: Connection, tables: list[str], personal: list[str]) -> list[str]:
    """ANALYZE, for the personal columns (`personal`: schema.table.column) it keeps statistics of,
    each partitioned table whose partitions were rewritten; no lock the shop's writes wait for."""
    found = conn.execute(_INHERITED_STATS, {"tables": tables, "personal": personal}).all()
    only = conn.connection.driver_connection.info.server_version >= _ANALYZE_ONLY_FROM
    for root, columns in found:
        schema, name = root.split(".")
        quoted = ", ".join(f'"{column}"' for column in columns)
        conn.execute(sa.text(f'ANALYZE {"ONLY " if only else ""}"{schema}"."{name}" ({quoted})'))
    return [root for root, _ in found]


def _record_wait(
    conn: Connection, run_id: str, relations: list[str], pending: dict, held: list[str]
) -> None:
    times = [pending[r].cleared_since for r in relations if r in pending]
    if times:  # a forced rewrite of tables with nothing cleared owes nothing
        conn.execute(
            _RECORD_WAIT,
            {
                "run_id": run_id,
                "relations": relations,
                "cleared_since": min(times),
                "waiting_for": held,
            },
        )


def _record_nothing_owed(
    engine: Engine, run_id: str, relations: list[str], covers_until, horizon_xid: str
) -> None:
    """Moves the mark of each table found owing nothing to the bound taken before the changes were
    read. Sound as a rewrite's mark is: no transaction of this database open then had started
    before `covers_until`, and every transaction older than `horizon_xid` had ended, so each
    change recorded before either had committed and was read, and none was placed in these."""
    if relations:
        with engine.begin() as conn:
            conn.execute(
                _NOTHING_OWED,
                {
                    "relations": relations,
                    "covers_until": covers_until,
                    "horizon": horizon_xid,
                    "run_id": run_id,
                },
            )


def erase_purged_storage(
    engine: Engine, policy: Policy, run_id: str, force: bool = False
) -> ErasureReport:
    """Rewrites each table holding values cleared since its last rewrite, or records why it waits."""
    if policy.retention.physical_erasure == "none":
        return ErasureReport(
            ran=False, reason="disabled by policy (retention.physical_erasure: none)"
        )
    with engine.connect() as conn:  # a partitioned table is rewritten partition by partition
        every = [r for source in backlog.sources(policy) for r in backlog.relations(conn, source)]
        covered = conn.execute(_COVERAGE).one()  # before the changes are read
    pending: dict[str, PendingErasure] = {p.relation: p for p in pending_erasures(engine, policy)}
    _record_nothing_owed(engine, run_id, [t for t in every if t not in pending], *covered)
    tables = [t for t in every if force or t in pending]
    timeout = policy.retention.erasure_lock_timeout_seconds
    if not tables:
        return _retry_statistics(engine, run_id, timeout)
    report = ErasureReport(ran=False, reason="")
    clock = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        online = repack.available(conn)
        xids = [p.newest_xid for t, p in pending.items() if t in tables]
        if xids:
            newest = conn.execute(_NEWEST, {"xids": xids}).scalar_one()
            waited = time.perf_counter()
            # pg_repack copies only what its snapshot sees: only this database's sessions matter.
            held = wait_for_horizon(conn, newest, timeout, this_database_only=online)
            report.step_seconds["waiting"] = time.perf_counter() - waited
            if held:
                _record_wait(conn, run_id, tables, pending, held)
                return ErasureReport(
                    ran=False,
                    reason=(
                        f"pending: {len(held)} snapshot(s) can still see the cleared rows; the "
                        "values stay on disk until they end, and the next run retries"
                    ),
                    pending=tables,
                    waiting_for=held,
                    seconds=time.perf_counter() - clock,
                    step_seconds=report.step_seconds,
                )
        started_at = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
        covers_until, horizon_xid = conn.execute(_COVERAGE).one()
        before = conn.execute(_SIZE, {"tables": tables}).scalar_one()
        report.mechanism = "pg_repack" if online else "vacuum_full"
        conn.execute(sa.text(f"SET lock_timeout = '{int(timeout)}s'"))
        try:  # the timeout is a session setting: never hand it back to the pool
            for table in tables:
                step = time.perf_counter()
                try:
                    if online:
                        repack.repack(engine.url, table, int(timeout))
                    else:
                        report.dead_versions_kept += _rewrite(conn, table)
                    report.tables.append(table)
                    report.step_seconds[f"rewrite {table}"] = time.perf_counter() - step
                except repack.RepackSkipped:
                    report.pending.append(table)
                    report.waiting_for.append(f"lock on {table} not granted within {timeout} s")
                except repack.RepackError as exc:
                    raise ErasureError(
                        f"{exc}. Cleared fields stay cleared; see docs/retention.md"
                    ) from None
                except sa.exc.DBAPIError as exc:
                    if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                        raise ErasureError(
                            f"could not rewrite {table}: {describe_db_error(exc)}. Cleared fields stay "
                            "cleared but their old row versions remain on disk; see docs/retention.md "
                            "for the privileges the job's user needs."
                        ) from None
                    report.pending.append(table)
                    report.waiting_for.append(f"lock on {table} not granted within {timeout} s")
            if report.tables:
                step = time.perf_counter()
                _analyze_partitioned(conn, report.tables, _personal_columns(policy))
                report.statistics = statistics.erase_old_statistics(conn, timeout)
                cleared = [pending[t].cleared_since for t in report.tables if t in pending]
                statistics.record(conn, run_id, report.statistics, min(cleared, default=started_at))
                report.step_seconds["statistics"] = time.perf_counter() - step
        finally:
            conn.execute(sa.text("RESET lock_timeout"))
        if report.tables:
            report.bytes_before = before
            report.bytes_after = conn.execute(_SIZE, {"tables": tables}).scalar_one()
            conn.execute(
                _RECORD,
                {
                    "run_id": run_id,
                    "started_at": started_at,
                    "tables": report.tables,
                    "before": before,
                    "after": report.bytes_after,
                    "covers_until": covers_until,
                    "mechanism": report.mechanism,
                    "horizon": horizon_xid,
                },
            )
        if report.pending:
            _record_wait(conn, run_id, report.pending, pending, report.waiting_for)
    report.ran = bool(report.tables)
    report.reason = f"rewrote {len(report.tables)} table(s)" + (
        f"; {len(report.pending)} pending: {'; '.join(report.waiting_for)}"
        if report.pending
        else ""
    )
    report.seconds = time.perf_counter() - clock
    return report


def _retry_statistics(engine: Engine, run_id: str, timeout: float) -> ErasureReport:
    """A night with no table to rewrite: retries the rewrite of pg_statistic if an earlier one is
    still owed (its old rows may hold cleared values), else does nothing."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        earlier = statistics.owed(conn)
        if earlier is None:
            return ErasureReport(ran=False, reason=NOTHING_CLEARED)
        clock = time.perf_counter()
        conn.execute(sa.text(f"SET lock_timeout = '{int(timeout)}s'"))
        try:  # the timeout is a session setting: never hand it back to the pool
            outcome = statistics.erase_old_statistics(conn, timeout)
        finally:
            conn.execute(sa.text("RESET lock_timeout"))
        statistics.record(conn, run_id, outcome, earlier.since)
    seconds = time.perf_counter() - clock
    return ErasureReport(
        ran=False,
        reason=f"{NOTHING_CLEARED}; pg_statistic, owed since an earlier rewrite: {outcome}",
        statistics=outcome,
        pending=[] if outcome == statistics.REWRITTEN else [statistics.RELATION],
        seconds=seconds,
        step_seconds={"statistics": seconds},
    )


def erasure_pending(engine: Engine, policy: Policy | None = None) -> bool:
    """True when some table still holds values cleared since its last rewrite."""
    return bool(pending_erasures(engine, policy))
