"""The hand-off table: which orders a carrier gets, and the refresh that makes the table say so.

One selection decides it: orders awaiting delivery (`lifecycle.orders.IN_DELIVERY`, a carrier from
the policy assigned, not purged) with their order id, carrier and the policy's fields, which can
only come from the allow-list lifecycle.policy.LOGISTICS_FIELDS. A refresh makes logistics.handoff
equal to that selection (insert new, update changed, delete the rest) one committed range of order
ids at a time, so a delivered, cancelled or purged order leaves it in the same nightly run. Each
batch's removals are logged in lifecycle.handoff_removals (order ids per carrier and reason), a
hash-chained audit table (migration 0070), by the same statement that removes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.batches import keyset_bound_sql, run_in_batches
from lifecycle.db import describe_db_error
from lifecycle.orders import IN_DELIVERY, SAMPLE_IDS, sql_list
from lifecycle.policy import LOGISTICS_FIELDS, LOGISTICS_KEYS, Policy, PolicyError, quote_ident

HANDOFF = '"logistics"."handoff"'
HANDOFF_COLUMNS = LOGISTICS_KEYS + LOGISTICS_FIELDS


class LogisticsError(RuntimeError):
    """A refresh batch or an export failed; what it had done was rolled back or left in place."""


class Selection:
    """The selection for one policy: quoted identifiers from the validated policy only."""

    def __init__(self, policy: Policy):
        o = policy.raw.orders
        self.orders = o.sql
        self.oid, self.carrier = "o." + o.col("order_id"), "o." + o.col("carrier")
        self.status, self.purged_at = "o." + o.col("status"), "o." + o.col("purged_at")
        chosen, source = policy.logistics.fields, source_columns(policy)
        # Fields the policy leaves out stay NULL, so the table keeps its allow-listed shape.
        self.values = ", ".join(
            (f"CAST(o.{quote_ident(source[f])} AS text)" if f in chosen else "CAST(NULL AS text)")
            + f" AS {f}"
            for f in LOGISTICS_FIELDS
        )
        self.columns = ", ".join(HANDOFF_COLUMNS)
        self.in_delivery = f"{self.status} IN ({sql_list(IN_DELIVERY)})"
        self.pending = f"{self.in_delivery} AND {self.purged_at} IS NULL"


def source_columns(policy: Policy) -> dict[str, str]:
    """The shop's column behind each hand-off column: the raw mapping for order_id, carrier and
    ship_region; the receiver fields by their own names, as in raw.orders.personal_columns."""
    mapped = policy.raw.orders.columns
    return {
        "order_id": mapped["order_id"],
        "carrier": mapped["carrier"],
        **{f: mapped["ship_region"] if f == "ship_region" else f for f in LOGISTICS_FIELDS},
    }


_SHOP_COLUMNS = sa.text(
    "SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND table_name = :t"
)


def check_sources(policy: Policy, conn: Connection) -> None:
    """Fails unless every column the hand-off reads exists in the shop's orders table."""
    table, source = policy.raw.orders, source_columns(policy)
    present = set(conn.execute(_SHOP_COLUMNS, {"s": table.schema, "t": table.name}).scalars())
    name, problems = policy.path.name, []
    if source["carrier"] not in present:
        problems.append(
            f"{name}: raw.orders.columns.carrier: column '{source['carrier']}' not in "
            f"{table.table}; run `lifecycle db upgrade` or map the shop's carrier "
            "column"
        )
    problems += [
        f"{name}: logistics.fields: column '{source[f]}' not in {table.table}; "
        f"remove '{f}' from logistics.fields or add the column"
        for f in policy.logistics.fields
        if source[f] not in present
    ]
    if problems:
        raise PolicyError(problems)


@dataclass
class HandoffReport:
    """What one refresh did: counts, carrier names and order ids, never a value."""

    run_id: str
    inserted: int = 0
    updated: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    removed_sample_ids: list[int] = field(default_factory=list)
    awaiting_carrier: int = 0
    unmatched_carrier: int = 0
    unmatched_sample_ids: list[int] = field(default_factory=list)
    rows_by_carrier: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    seconds: float = 0.0

    @property
    def removed_total(self) -> int:
        return sum(self.removed.values())

    @property
    def rows(self) -> int:
        return sum(self.rows_by_carrier.values())

    def metadata(self) -> dict[str, object]:
        """Counts, carrier names and sample order ids for the refresh's materialization."""
        return {
            "dagster/row_count": self.rows,
            "rows_by_carrier": self.rows_by_carrier,
            "inserted": self.inserted,
            "updated": self.updated,
            "removed": self.removed_total,
            "removed_by_reason": self.removed,
            "removed_sample_order_ids": self.removed_sample_ids,
            "pending_without_carrier": self.awaiting_carrier,
            "pending_with_unknown_carrier": self.unmatched_carrier,
            "unknown_carrier_sample_order_ids": self.unmatched_sample_ids,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
        }


# What one batch did: (kind, rows, sample order ids) per kind of change, from _refresh_batch_sql.
_Outcome = list[tuple[str, int, list[int]]]


def _refresh_batch_sql(q: Selection) -> str:
    # Changed rows are found by comparing, not by ON CONFLICT DO UPDATE, which would lock (and so
    # write to) every unchanged row; a repeated refresh therefore only reads.
    held = ", ".join(f"h.{c}" for c in HANDOFF_COLUMNS[1:])
    wanted = ", ".join(f"p.{c}" for c in HANDOFF_COLUMNS[1:])
    assign = ", ".join(f"{c} = s.{c}" for c in HANDOFF_COLUMNS[1:])
    return f"""
    WITH pending AS (
        SELECT {q.oid} AS order_id, CAST({q.carrier} AS text) AS carrier, {q.values}
        FROM {q.orders} o
        WHERE {q.oid} > :after AND {q.oid} <= :upto AND {q.pending}
    ), selection AS (
        SELECT p.*, h.order_id IS NULL AS is_new,
               h.order_id IS NOT NULL AND ({held}) IS DISTINCT FROM ({wanted}) AS changed
        FROM pending p
        LEFT JOIN {HANDOFF} h
               ON h.order_id = p.order_id AND h.order_id > :after AND h.order_id <= :upto
        WHERE p.carrier = ANY(CAST(:carriers AS text[]))
    ), removed AS (
        DELETE FROM {HANDOFF} h
        WHERE h.order_id > :after AND h.order_id <= :upto
          AND NOT EXISTS (SELECT 1 FROM selection s WHERE s.order_id = h.order_id)
        RETURNING h.order_id, h.carrier
    ), removed_why AS (
        SELECT r.order_id, r.carrier,
               CASE WHEN {q.oid} IS NULL THEN 'order_gone'
                    WHEN {q.purged_at} IS NOT NULL THEN 'purged'
                    WHEN {q.status} = 'delivered' THEN 'delivered'
                    WHEN {q.status} = 'cancelled' THEN 'cancelled'
                    WHEN {q.in_delivery} THEN 'carrier_unmatched'
                    ELSE 'not_awaiting_delivery' END AS reason
        FROM removed r LEFT JOIN {q.orders} o ON {q.oid} = r.order_id
    ), removal_log AS (
        -- Written in the batch's own statement, so a removal is never committed unlogged.
        INSERT INTO lifecycle.handoff_removals (run_id, carrier, reason, removed, order_ids)
        SELECT :run_id, carrier, reason, count(*), array_agg(order_id ORDER BY order_id)
        FROM removed_why GROUP BY carrier, reason
    ), inserted AS (
        INSERT INTO {HANDOFF} ({q.columns})
        SELECT {q.columns} FROM selection WHERE is_new
        ON CONFLICT (order_id) DO NOTHING  -- a row written meanwhile never fails the batch
        RETURNING order_id
    ), updated AS (
        UPDATE {HANDOFF} h SET {assign}
        FROM selection s
        WHERE h.order_id = s.order_id AND s.changed AND h.order_id > :after AND h.order_id <= :upto
        RETURNING h.order_id
    )
    SELECT kind, count(*),
           (array_agg(order_id ORDER BY order_id)
                FILTER (WHERE kind NOT IN ('inserted', 'updated')))[1:{SAMPLE_IDS}]
    FROM (
        SELECT 'inserted' AS kind, order_id FROM inserted
        UNION ALL
        SELECT 'updated', order_id FROM updated
        UNION ALL
        SELECT 'removed:' || reason, order_id FROM removed_why
        UNION ALL
        SELECT CASE WHEN carrier IS NULL THEN 'awaiting_carrier' ELSE 'unmatched_carrier' END,
               order_id
        FROM pending WHERE carrier IS NULL OR carrier <> ALL(CAST(:carriers AS text[]))
    ) outcome
    GROUP BY kind
    """


# The snapshot recorded before the first batch is what the check later compares order rows with.
_START = sa.text("""
    INSERT INTO lifecycle.handoff_refreshes (run_id, snapshot, policy_version, policy_hash)
    VALUES (:run_id, pg_current_snapshot(), :policy_version, :policy_hash)
    ON CONFLICT (run_id) DO UPDATE SET started_at = now(), snapshot = EXCLUDED.snapshot,
        status = 'running', finished_at = NULL, policy_version = EXCLUDED.policy_version,
        policy_hash = EXCLUDED.policy_hash
""")
_FINISH = sa.text("""
    UPDATE lifecycle.handoff_refreshes
    SET finished_at = now(), status = :status, inserted = :inserted, updated = :updated,
        removed = :removed, handoff_rows = :rows
    WHERE run_id = :run_id
""")
# Concurrent refreshes (the nightly job and an on-demand run) take turns batch by batch, so their
# deletes and updates of the same rows can never wait on each other in a cycle.
_ONE_BATCH_AT_A_TIME = sa.text(
    "SELECT pg_advisory_xact_lock(hashtext('lifecycle.logistics.refresh'))"
)
_ROWS_BY_CARRIER = sa.text(
    f"SELECT carrier, count(*) FROM {HANDOFF} GROUP BY carrier ORDER BY carrier"
)


def _take_turn(conn: Connection) -> None:
    conn.execute(_ONE_BATCH_AT_A_TIME)


def refresh_handoff(
    engine: Engine,
    policy: Policy,
    run_id: str,
    on_batch: Callable[[HandoffReport], None] | None = None,
) -> HandoffReport:
    """Makes the hand-off equal the selection, one committed range of order ids at a time.

    Each batch is one statement in one transaction; an unchanged row is not rewritten, so a
    repeated refresh changes nothing, and a refresh killed midway leaves every batch whole.
    """
    with engine.connect() as conn:
        check_sources(policy, conn)
    q = Selection(policy)
    report = HandoffReport(run_id=run_id)
    with engine.begin() as conn:
        conn.execute(
            _START,
            {"run_id": run_id, "policy_version": policy.version, "policy_hash": policy.sha256},
        )
    # The ranges cover every bigint: each hand-off row falls in a batch even when its order is gone.
    # They are cut at every batch_size-th order not cleared yet (through orders_not_purged_idx):
    # only those can be pending, so the walk and each batch's read of the orders cost the orders
    # in flight, not every order ever placed (cleared ones between two bounds are never read).
    bound_sql = keyset_bound_sql(q.orders, q.oid, where=f"{q.purged_at} IS NULL")
    batch_sql = sa.text(_refresh_batch_sql(q))
    carriers = list(policy.logistics.carriers)

    def batch(conn: Connection, after: int, upto: int) -> _Outcome:
        return _run_batch(
            conn,
            batch_sql,
            {"after": after, "upto": upto, "carriers": carriers, "run_id": run_id},
        )

    started = time.perf_counter()
    status = "failed"
    try:
        batches = run_in_batches(
            engine, bound_sql, policy.logistics.batch_size, batch, before_batch=_take_turn
        )
        for outcome in batches:
            _tally(report, outcome)
            report.batches += 1
            report.seconds = time.perf_counter() - started
            if on_batch:
                on_batch(report)
        counts = handoff_rows_by_carrier(engine)
        report.rows_by_carrier = {c: counts.pop(c, 0) for c in carriers} | counts
        status = "succeeded"
    finally:
        report.seconds = time.perf_counter() - started
        with engine.begin() as conn:
            conn.execute(
                _FINISH,
                {
                    "run_id": run_id,
                    "status": status,
                    "inserted": report.inserted,
                    "updated": report.updated,
                    "removed": report.removed_total,
                    "rows": report.rows if status == "succeeded" else None,
                },
            )
    return report


def _run_batch(conn: Connection, statement: sa.TextClause, params: dict) -> _Outcome:
    try:
        return [tuple(row) for row in conn.execute(statement, params)]
    except sa.exc.DBAPIError as exc:
        # The driver's text can quote a row; keep the error class and the id range only.
        raise LogisticsError(
            f"hand-off batch for order_id in ({params['after']}, {params['upto']}] rolled back: "
            f"{describe_db_error(exc)}"
        ) from None


def _tally(report: HandoffReport, outcome: _Outcome) -> None:
    for kind, n, ids in outcome:
        if kind == "inserted":
            report.inserted += n
        elif kind == "updated":
            report.updated += n
        elif kind.startswith("removed:"):
            reason = kind.split(":", 1)[1]
            report.removed[reason] = report.removed.get(reason, 0) + n
            report.removed_sample_ids = _first_ids(report.removed_sample_ids, ids)
        elif kind == "awaiting_carrier":
            report.awaiting_carrier += n
        else:
            report.unmatched_carrier += n
            report.unmatched_sample_ids = _first_ids(report.unmatched_sample_ids, ids)


def _first_ids(kept: list[int], more: list[int] | None) -> list[int]:
    return sorted(kept + list(more or []))[:SAMPLE_IDS]


def handoff_rows_by_carrier(engine: Engine) -> dict[str, int]:
    """How many deliveries each carrier has pending in the hand-off right now."""
    with engine.connect() as conn:
        return dict(conn.execute(_ROWS_BY_CARRIER).all())
