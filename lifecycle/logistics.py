"""Minimal sharing with carriers: the hand-off table, who may read it, and the files they receive.

One selection decides what a carrier gets: orders awaiting delivery (`paid` or `shipped`, a carrier
from the policy assigned, not purged) with their order id, carrier and the policy's fields, which
can only come from the allow-list lifecycle.policy.LOGISTICS_FIELDS. A refresh makes
logistics.handoff equal to that selection (insert new, update changed, delete the rest), so a
delivered, cancelled or purged order leaves it in the same nightly run. A carrier reads it as a
database role under row-level security (its own rows, the granted columns) and/or receives a CSV
file with a manifest; the checks connect as every role to prove what it can read.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import sqlalchemy as sa
from psycopg import sql as pgsql
from sqlalchemy.engine import Connection, Engine

from lifecycle.db import describe_db_error
from lifecycle.policy import (
    CARRIER_ROLE_PREFIX, LOGISTICS_FIELDS, LOGISTICS_KEYS, Policy, PolicyError, quote_ident,
)
from lifecycle.orders import MAX_BIGINT, SAMPLE_IDS

HANDOFF_TABLE = "logistics.handoff"
HANDOFF = '"logistics"."handoff"'
HANDOFF_COLUMNS = LOGISTICS_KEYS + LOGISTICS_FIELDS
EXPORT_PURPOSE = "logistics"
EXPORT_FILE = "deliveries.csv"
MANIFEST_FILE = "manifest.json"
# A carrier name can never look like this (names are identifiers), so no role may see its probe row.
OUTSIDER = "~no_such_carrier"


class LogisticsError(RuntimeError):
    """A refresh batch or an export failed; what it had done was rolled back or left in place."""


def role_name(carrier: str) -> str:
    """The database role through which `carrier` reads its own deliveries."""
    return CARRIER_ROLE_PREFIX + carrier


def policy_name(carrier: str) -> str:
    """The row-level security policy that shows `carrier` its own rows."""
    return "carrier_" + carrier


class _Sql:
    """The selection for one policy: quoted identifiers from the validated policy only."""

    def __init__(self, policy: Policy):
        o = policy.raw.orders
        self.orders = o.sql
        self.oid, self.carrier = "o." + o.col("order_id"), "o." + o.col("carrier")
        self.status, self.purged_at = "o." + o.col("status"), "o." + o.col("purged_at")
        chosen, source = policy.logistics.fields, source_columns(policy)
        # Fields the policy leaves out stay NULL, so the table keeps its allow-listed shape.
        self.values = ", ".join(
            (f"CAST(o.{quote_ident(source[f])} AS text)" if f in chosen else "CAST(NULL AS text)") + f" AS {f}"
            for f in LOGISTICS_FIELDS
        )
        self.columns = ", ".join(HANDOFF_COLUMNS)
        self.pending = f"{self.status} IN ('paid', 'shipped') AND {self.purged_at} IS NULL"


def source_columns(policy: Policy) -> dict[str, str]:
    """The shop's column behind each hand-off column: the raw mapping for order_id, carrier and
    ship_region; the receiver fields by their own names, as in raw.orders.personal_columns."""
    mapped = policy.raw.orders.columns
    return {"order_id": mapped["order_id"], "carrier": mapped["carrier"],
            **{f: mapped["ship_region"] if f == "ship_region" else f for f in LOGISTICS_FIELDS}}


def check_sources(policy: Policy, conn: Connection) -> None:
    """Fails unless every column the hand-off reads exists in the shop's orders table."""
    table, source = policy.raw.orders, source_columns(policy)
    present = set(conn.execute(sa.text(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND table_name = :t"),
        {"s": table.schema, "t": table.name}).scalars())
    problems = []
    if source["carrier"] not in present:
        problems.append(f"{policy.path.name}: raw.orders.columns.carrier: column '{source['carrier']}' not in "
                        f"{table.table}; run `lifecycle db upgrade` or map the shop's carrier column")
    problems += [f"{policy.path.name}: logistics.fields: column '{source[f]}' not in {table.table}; "
                 f"remove '{f}' from logistics.fields or add the column"
                 for f in policy.logistics.fields if source[f] not in present]
    if problems:
        raise PolicyError(problems)


# ---------------------------------------------------------------- refresh

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


def _batch_bound_sql(q: _Sql) -> str:
    # Keyset walk of the orders' primary key; the ranges cover every bigint, so each hand-off row
    # falls in one batch even when its order row is gone.
    return f"SELECT {q.oid} FROM {q.orders} o WHERE {q.oid} > :after ORDER BY {q.oid} OFFSET :skip LIMIT 1"


def _refresh_batch_sql(q: _Sql) -> str:
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
        LEFT JOIN {HANDOFF} h ON h.order_id = p.order_id AND h.order_id > :after AND h.order_id <= :upto
        WHERE p.carrier = ANY(CAST(:carriers AS text[]))
    ), removed AS (
        DELETE FROM {HANDOFF} h
        WHERE h.order_id > :after AND h.order_id <= :upto
          AND NOT EXISTS (SELECT 1 FROM selection s WHERE s.order_id = h.order_id)
        RETURNING h.order_id
    ), inserted AS (
        INSERT INTO {HANDOFF} ({q.columns})
        SELECT {q.columns} FROM selection WHERE is_new
        ON CONFLICT (order_id) DO NOTHING  -- a row written meanwhile by anyone else never fails the batch
        RETURNING order_id
    ), updated AS (
        UPDATE {HANDOFF} h SET {assign}
        FROM selection s
        WHERE h.order_id = s.order_id AND s.changed AND h.order_id > :after AND h.order_id <= :upto
        RETURNING h.order_id
    )
    SELECT kind, count(*),
           (array_agg(order_id ORDER BY order_id) FILTER (WHERE kind NOT IN ('inserted', 'updated')))[1:{SAMPLE_IDS}]
    FROM (
        SELECT 'inserted' AS kind, order_id FROM inserted
        UNION ALL
        SELECT 'updated', order_id FROM updated
        UNION ALL
        SELECT 'removed:' || CASE WHEN {q.oid} IS NULL THEN 'order_gone'
                                  WHEN {q.purged_at} IS NOT NULL THEN 'purged'
                                  WHEN {q.status} = 'delivered' THEN 'delivered'
                                  WHEN {q.status} = 'cancelled' THEN 'cancelled'
                                  WHEN {q.status} IN ('paid', 'shipped') THEN 'carrier_unmatched'
                                  ELSE 'not_awaiting_delivery' END, r.order_id
        FROM removed r LEFT JOIN {q.orders} o ON {q.oid} = r.order_id
        UNION ALL
        SELECT CASE WHEN carrier IS NULL THEN 'awaiting_carrier' ELSE 'unmatched_carrier' END, order_id
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
_ONE_BATCH_AT_A_TIME = sa.text("SELECT pg_advisory_xact_lock(hashtext('lifecycle.logistics.refresh'))")
_ROWS_BY_CARRIER = sa.text(f"SELECT carrier, count(*) FROM {HANDOFF} GROUP BY carrier ORDER BY carrier")


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
    q = _Sql(policy)
    report = HandoffReport(run_id=run_id)
    with engine.begin() as conn:
        conn.execute(_START, {"run_id": run_id, "policy_version": policy.version, "policy_hash": policy.sha256})
    bound_sql, batch_sql = sa.text(_batch_bound_sql(q)), sa.text(_refresh_batch_sql(q))
    carriers = list(policy.logistics.carriers)
    skip = policy.logistics.batch_size - 1
    started = time.perf_counter()
    after, status = -MAX_BIGINT - 1, "failed"
    try:
        while after < MAX_BIGINT:
            with engine.begin() as conn:
                conn.execute(_ONE_BATCH_AT_A_TIME)
                upto = conn.execute(bound_sql, {"after": after, "skip": skip}).scalar()
                upto = MAX_BIGINT if upto is None else upto
                outcome = _run_batch(conn, batch_sql, {"after": after, "upto": upto, "carriers": carriers})
            _tally(report, outcome)
            report.batches += 1
            report.seconds = time.perf_counter() - started
            after = upto
            if on_batch:
                on_batch(report)
        counts = handoff_rows_by_carrier(engine)
        report.rows_by_carrier = {c: counts.pop(c, 0) for c in carriers} | counts
        status = "succeeded"
    finally:
        report.seconds = time.perf_counter() - started
        with engine.begin() as conn:
            conn.execute(_FINISH, {"run_id": run_id, "status": status, "inserted": report.inserted,
                                   "updated": report.updated, "removed": report.removed_total,
                                   "rows": report.rows if status == "succeeded" else None})
    return report


def _run_batch(conn: Connection, statement: sa.TextClause, params: dict) -> list[tuple[str, int, list[int]]]:
    try:
        return [tuple(row) for row in conn.execute(statement, params)]
    except sa.exc.DBAPIError as exc:
        # The driver's text can quote a row; keep the error class and the id range only.
        raise LogisticsError(
            f"hand-off batch for order_id in ({params['after']}, {params['upto']}] rolled back: "
            f"{describe_db_error(exc)}"
        ) from None


def _tally(report: HandoffReport, outcome: list[tuple[str, int, list[int]]]) -> None:
    for kind, n, ids in outcome:
        if kind == "inserted":
            report.inserted += n
        elif kind == "updated":
            report.updated += n
        elif kind.startswith("removed:"):
            reason = kind.split(":", 1)[1]
            report.removed[reason] = report.removed.get(reason, 0) + n
            report.removed_sample_ids = sorted(report.removed_sample_ids + list(ids or []))[:SAMPLE_IDS]
        elif kind == "awaiting_carrier":
            report.awaiting_carrier += n
        else:
            report.unmatched_carrier += n
            report.unmatched_sample_ids = sorted(report.unmatched_sample_ids + list(ids or []))[:SAMPLE_IDS]


# ---------------------------------------------------------------- carrier roles

@dataclass
class AccessReport:
    """Which carrier roles hold access after the run, and what this run had to change."""

    roles: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    regranted: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, object]:
        return {"carrier_roles": self.roles, "roles_created": self.created, "roles_regranted": self.regranted,
                "roles_revoked": self.revoked, "granted_columns": self.columns}


# Roles are cluster-wide: another database (or a concurrent test run) may create the same one
# between the check and the CREATE, which surfaces as either error below.
_CREATE_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {literal}) THEN
        CREATE ROLE {ident} NOLOGIN NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END $$
"""
_ROLE_EXISTS = sa.text("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :name)")
_HOLDERS = sa.text("""
    SELECT rolname FROM pg_roles
    WHERE starts_with(rolname, :prefix)
      AND (has_schema_privilege(oid, 'logistics', 'USAGE')
           OR has_any_column_privilege(oid, 'logistics.handoff', 'SELECT, INSERT, UPDATE, REFERENCES')
           OR has_table_privilege(oid, 'logistics.handoff', 'DELETE, TRUNCATE, TRIGGER'))
    ORDER BY rolname
""")
# A role holds exactly what it should: schema usage, SELECT on the wanted columns (not the whole
# table, which would also open any column added later), and nothing else.
_GRANTS_OF = sa.text("""
    SELECT has_schema_privilege(:role, 'logistics', 'USAGE')
       AND NOT has_table_privilege(:role, 'logistics.handoff', 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
       AND NOT has_any_column_privilege(:role, 'logistics.handoff', 'INSERT, UPDATE, REFERENCES')
       AND ARRAY(SELECT CAST(attname AS text) FROM pg_attribute
                 WHERE attrelid = CAST('logistics.handoff' AS regclass) AND attnum > 0 AND NOT attisdropped
                   AND has_column_privilege(:role, attrelid, attnum, 'SELECT') ORDER BY attname)
           = CAST(:columns AS text[])
""")
_OUR_POLICIES = sa.text("""
    SELECT policyname FROM pg_policies
    WHERE schemaname = 'logistics' AND tablename = 'handoff' AND starts_with(policyname, 'carrier_')
""")
_POLICIES = sa.text("""
    SELECT policyname, cmd = 'SELECT' AND permissive = 'PERMISSIVE' AND CAST(roles AS text[]) = ARRAY[:role]
                       AND qual = :qual
    FROM pg_policies WHERE schemaname = 'logistics' AND tablename = 'handoff'
""")


def _literal(value: str) -> str:
    # Only for names that passed policy.IDENTIFIER (letters, digits, _), so no quote can occur.
    quote_ident(value)
    return "'" + value + "'"


def create_role(engine: Engine, name: str) -> bool:
    """Creates the NOLOGIN role `name` unless it exists; True when this call created it."""
    with engine.begin() as conn:
        existed = conn.execute(_ROLE_EXISTS, {"name": name}).scalar()
        if not existed:
            conn.execute(sa.text(_CREATE_ROLE.format(literal=_literal(name), ident=quote_ident(name))))
    return not existed


def ensure_carrier_access(engine: Engine, policy: Policy) -> AccessReport:
    """Gives each role carrier of the policy its role, its row policy and its columns; no one else.

    Changes only what differs, under one advisory lock in one transaction, so a repeated run
    changes nothing and takes no lock on the hand-off (a new row policy needs an exclusive one).
    """
    carriers = policy.logistics.role_carriers
    columns = list(LOGISTICS_KEYS + policy.logistics.fields)
    report = AccessReport(roles=[role_name(c) for c in carriers], columns=columns)
    report.created = [role_name(c) for c in carriers if create_role(engine, role_name(c))]
    granted = ", ".join(quote_ident(c) for c in columns)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('lifecycle.logistics.access'))"))
        holders = conn.execute(_HOLDERS, {"prefix": CARRIER_ROLE_PREFIX}).scalars().all()
        report.revoked = [r for r in holders if r not in report.roles]
        for role in report.revoked:
            conn.execute(sa.text(f"REVOKE ALL ON {HANDOFF} FROM {quote_ident(role)}"))
            conn.execute(sa.text(f"REVOKE ALL ON SCHEMA logistics FROM {quote_ident(role)}"))
        for carrier in carriers:
            role, rule = role_name(carrier), policy_name(carrier)
            if not conn.execute(_GRANTS_OF, {"role": role, "columns": sorted(columns)}).scalar():
                report.regranted.append(role)
                conn.execute(sa.text(f"GRANT USAGE ON SCHEMA logistics TO {quote_ident(role)}"))
                conn.execute(sa.text(f"REVOKE ALL ON {HANDOFF} FROM {quote_ident(role)}"))
                conn.execute(sa.text(f"GRANT SELECT ({granted}) ON {HANDOFF} TO {quote_ident(role)}"))
            qual = f"(carrier = {_literal(carrier)}::text)"  # as pg_policies shows it
            rules = dict(conn.execute(_POLICIES, {"role": role, "qual": qual}).all())
            if not rules.get(rule):
                conn.execute(sa.text(f"DROP POLICY IF EXISTS {quote_ident(rule)} ON {HANDOFF}"))
                conn.execute(sa.text(
                    f"CREATE POLICY {quote_ident(rule)} ON {HANDOFF} AS PERMISSIVE FOR SELECT "
                    f"TO {quote_ident(role)} USING (carrier = {_literal(carrier)})"))
        wanted = {policy_name(c) for c in carriers}
        for stale in set(conn.execute(_OUR_POLICIES).scalars()) - wanted:
            conn.execute(sa.text(f"DROP POLICY {quote_ident(stale)} ON {HANDOFF}"))
    return report


# ---------------------------------------------------------------- checks

@dataclass
class CheckOutcome:
    """A check's verdict with what a reviewer needs to act: counts, ids, names; never a value."""

    passed: bool
    metadata: dict[str, object]
    problems: list[str] = field(default_factory=list)


_COLUMNS = sa.text("""
    SELECT column_name FROM information_schema.columns
    WHERE table_schema = 'logistics' AND table_name = 'handoff' ORDER BY ordinal_position
""")


def check_columns(engine: Engine, policy: Policy) -> CheckOutcome:
    """The hand-off has exactly the allow-listed columns, and those the policy leaves out are empty."""
    with engine.connect() as conn:
        present = conn.execute(_COLUMNS).scalars().all()
        left_out = [c for c in LOGISTICS_FIELDS if c in present and c not in policy.logistics.fields]
        filled: dict[str, int] = {}
        if left_out:
            counts = ", ".join(f"count({quote_ident(c)})" for c in left_out)
            filled = {c: n for c, n in zip(left_out, conn.execute(sa.text(f"SELECT {counts} FROM {HANDOFF}")).one()) if n}
    unexpected = [c for c in present if c not in HANDOFF_COLUMNS]
    missing = [c for c in HANDOFF_COLUMNS if c not in present]
    problems = [f"{HANDOFF_TABLE} has column '{c}', which is not on the allow-list; drop it "
                f"(ALTER TABLE {HANDOFF_TABLE} DROP COLUMN {c}) and run the erasure" for c in unexpected]
    problems += [f"{HANDOFF_TABLE} lacks column '{c}'; run `lifecycle db upgrade`" for c in missing]
    problems += [f"{HANDOFF_TABLE}.{c} holds {n} values although the policy does not hand it off; "
                 "run the refresh" for c, n in filled.items()]
    return CheckOutcome(
        passed=not problems,
        metadata={"columns": list(present), "unexpected_columns": unexpected, "missing_columns": missing,
                  "left_out_fields_holding_values": filled, "handed_off_fields": list(policy.logistics.fields)},
        problems=problems,
    )


def _finished_sql(q: _Sql) -> str:
    # Orders keep changing while the night runs, so only a row whose order was already finished
    # when the last refresh began proves a failed removal. The order row's xmin, widened to 64
    # bits against the current snapshot, is tested against the snapshot that refresh recorded.
    xmin = "CAST(CAST(o.xmin AS text) AS bigint)"
    ref = "CAST(CAST(pg_snapshot_xmax(pg_current_snapshot()) AS text) AS bigint)"
    widened = f"{ref} - (({ref} % 4294967296 - {xmin} + 4294967296) % 4294967296)"
    return f"""
    WITH last AS (
        SELECT (SELECT snapshot FROM lifecycle.handoff_refreshes WHERE status = 'succeeded'
                ORDER BY started_at DESC LIMIT 1) AS snapshot
    ), stale AS (
        SELECT h.order_id,
               CASE WHEN {q.oid} IS NULL THEN 'order_gone'
                    WHEN {q.purged_at} IS NOT NULL THEN 'purged'
                    WHEN {q.status} = 'delivered' THEN 'delivered'
                    WHEN {q.status} = 'cancelled' THEN 'cancelled'
                    WHEN {q.status} NOT IN ('paid', 'shipped') THEN 'not_awaiting_delivery'
                    WHEN h.carrier <> ALL(CAST(:carriers AS text[])) THEN 'carrier_not_in_policy'
                    ELSE 'carrier_changed' END AS reason,
               CASE WHEN last.snapshot IS NULL OR {q.oid} IS NULL OR {xmin} < 3 THEN true
                    ELSE pg_visible_in_snapshot(CAST(CAST({widened} AS text) AS xid8), last.snapshot)
               END AS before_refresh
        FROM {HANDOFF} h CROSS JOIN last
        LEFT JOIN {q.orders} o ON {q.oid} = h.order_id
        WHERE {q.oid} IS NULL OR ({q.pending}) IS NOT TRUE
           OR {q.carrier} IS DISTINCT FROM h.carrier OR h.carrier <> ALL(CAST(:carriers AS text[]))
    )
    SELECT reason, before_refresh OR reason = 'carrier_not_in_policy', count(*),
           (array_agg(order_id ORDER BY order_id))[1:{SAMPLE_IDS}]
    FROM stale GROUP BY 1, 2
    """


def check_finished_orders_gone(engine: Engine, policy: Policy) -> CheckOutcome:
    """No hand-off row for an order that was delivered, cancelled, purged or re-assigned when the
    last refresh began; orders that changed since are counted and leave at the next refresh."""
    q = _Sql(policy)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(_finished_sql(q)), {"carriers": list(policy.logistics.carriers)}).all()
    failing = {reason: n for reason, before, n, _ in rows if before}
    since = {reason: n for reason, before, n, _ in rows if not before}
    sample = sorted(i for _, before, _, ids in rows if before for i in ids or [])[:SAMPLE_IDS]
    problems = [f"{n} hand-off rows belong to orders {reason.replace('_', ' ')} before the last refresh "
                f"(order ids {sample}); run the refresh and find what kept them" for reason, n in failing.items()]
    return CheckOutcome(
        passed=not failing,
        metadata={"finished_rows": sum(failing.values()), "finished_by_reason": failing,
                  "finished_sample_order_ids": sample, "changed_since_refresh": sum(since.values()),
                  "changed_since_refresh_by_reason": since},
        problems=problems,
    )


_RELATIONS = sa.text(f"""
    SELECT format('%I.%I', n.nspname, c.relname)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT starts_with(n.nspname, 'pg_')
      AND c.oid <> CAST('{HANDOFF_TABLE}' AS regclass)
    ORDER BY 1
""")
_PROBE = sa.text(f"""
    INSERT INTO {HANDOFF} (order_id, carrier)
    SELECT -9223372036854775807 + i, c FROM unnest(CAST(:carriers AS text[])) WITH ORDINALITY AS p(c, i)
    ON CONFLICT (order_id) DO NOTHING
""")
_SEEN = sa.text(f"SELECT carrier, count(*) FROM {HANDOFF} GROUP BY carrier")
_WRITES = (f"INSERT INTO {HANDOFF} (order_id, carrier) SELECT 0, '' WHERE false",
           f"UPDATE {HANDOFF} SET carrier = carrier WHERE false",
           f"DELETE FROM {HANDOFF} WHERE false")


def _allowed(conn: Connection, statement: str) -> bool:
    """Runs `statement` in a savepoint: True if the current role may, False on a privilege error."""
    try:
        with conn.begin_nested():
            conn.execute(sa.text(statement))
        return True
    except sa.exc.ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) in ("42501", "42P01"):  # no privilege, relation gone
            return False
        raise


def check_carrier_isolation(engine: Engine, policy: Policy) -> CheckOutcome:
    """Connects as each carrier role and proves it reads only its own hand-off rows, only the
    granted columns, and no other table or view, and cannot write.

    One probe row per configured carrier (and one for no carrier at all) is added inside the
    check's transaction and rolled back, so the proof holds even for a carrier with no orders.
    """
    carriers = list(policy.logistics.carriers)
    expected_columns = set(LOGISTICS_KEYS + policy.logistics.fields)
    problems: list[str] = []
    per_role: dict[str, dict[str, object]] = {}
    with engine.connect() as conn:
        with conn.begin():
            relations = conn.execute(_RELATIONS).scalars().all()
            conn.execute(_PROBE, {"carriers": carriers + [OUTSIDER]})
            totals = dict(conn.execute(_SEEN).all())
            for carrier in policy.logistics.role_carriers:
                role = role_name(carrier)
                try:
                    with conn.begin_nested():
                        conn.execute(sa.text(f"SET LOCAL ROLE {quote_ident(role)}"))
                except sa.exc.DBAPIError as exc:
                    problems.append(f"cannot act as role {role} ({describe_db_error(exc)}); run the hand-off "
                                    "refresh, which creates it, as a user allowed to SET ROLE to it")
                    continue
                seen = dict(conn.execute(_SEEN).all()) if _allowed(conn, f"SELECT carrier FROM {HANDOFF} LIMIT 0") else {}
                readable = {c for c in HANDOFF_COLUMNS if _allowed(conn, f"SELECT {c} FROM {HANDOFF} LIMIT 0")}
                opened = [r for r in relations if _allowed(conn, f"SELECT 1 FROM {r} LIMIT 0")]
                writes = [w.split()[0] for w in _WRITES if _allowed(conn, w)]
                conn.execute(sa.text("RESET ROLE"))
                others = {c: n for c, n in seen.items() if c != carrier}
                per_role[role] = {"own_rows_seen": seen.get(carrier, 0), "own_rows": totals.get(carrier, 0),
                                  "other_carriers_rows_seen": sum(others.values()),
                                  "readable_columns": sorted(readable), "readable_relations": opened,
                                  "writes_allowed": writes}
                if others:
                    problems.append(f"{role} sees {sum(others.values())} rows of other carriers "
                                    f"({sorted(others)}); check the row policies and grants on {HANDOFF_TABLE}")
                if seen.get(carrier, 0) != totals.get(carrier, 0):
                    problems.append(f"{role} sees {seen.get(carrier, 0)} of its {totals.get(carrier, 0)} rows; "
                                    "run the hand-off refresh to restore its grants and row policy")
                if readable != expected_columns:
                    problems.append(f"{role} reads columns {sorted(readable)}, the policy hands off "
                                    f"{sorted(expected_columns)}; run the hand-off refresh")
                if opened:
                    problems.append(f"{role} can read {len(opened)} other relations ({', '.join(opened[:5])}); "
                                    f"revoke them (REVOKE ALL ON <table> FROM {role}, and from PUBLIC)")
                if writes:
                    problems.append(f"{role} may {', '.join(writes)} on {HANDOFF_TABLE}; revoke it")
            conn.rollback()
    return CheckOutcome(passed=not problems, metadata={"roles": per_role, "relations_probed": len(relations)},
                        problems=problems)


# ---------------------------------------------------------------- CSV exports

@dataclass
class ExportReport:
    """Which carrier files were written or removed, with row counts and checksums."""

    folder: Path
    files: dict[str, dict[str, object]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, object]:
        return {
            "folder": str(self.folder),
            "rows_by_carrier": {c: f["rows"] for c, f in self.files.items()},
            "sha256_by_carrier": {c: str(f["sha256"])[:12] for c, f in self.files.items()},
            "removed_exports": self.removed,
        }


def export_carrier_files(engine: Engine, policy: Policy, folder: Path, run_id: str,
                         now: datetime | None = None) -> ExportReport:
    """Writes each CSV carrier's pending deliveries and a manifest into folder/<carrier>/.

    A new file replaces the previous one (written aside, then renamed), so a delivered order
    leaves the file with the same night's export; folders of carriers no longer receiving files
    are emptied. All files come from one snapshot of the hand-off.
    """
    now = now or datetime.now(timezone.utc)
    columns = list(LOGISTICS_KEYS + policy.logistics.fields)
    report = ExportReport(folder=folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with engine.connect().execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True) as conn:
        cursor = conn.connection.driver_connection.cursor()
        for carrier in policy.logistics.csv_carriers:
            target = folder / carrier
            target.mkdir(exist_ok=True, mode=0o700)
            query = pgsql.SQL("COPY (SELECT {cols} FROM logistics.handoff WHERE carrier = {carrier} "
                              "ORDER BY order_id) TO STDOUT WITH (FORMAT csv, HEADER true)").format(
                cols=pgsql.SQL(", ").join(pgsql.Identifier(c) for c in columns), carrier=pgsql.Literal(carrier))
            written = _write_copy(cursor, query, target / EXPORT_FILE)
            manifest = {
                "carrier": carrier, "file": EXPORT_FILE, "rows": written["rows"], "bytes": written["bytes"],
                "sha256": written["sha256"], "columns": columns, "generated_at": now.isoformat(),
                "run_id": run_id, "policy_version": policy.version, "policy_hash": policy.short_hash,
                "contents": "orders awaiting delivery by this carrier; each export replaces the previous one",
            }
            _write_atomically(target / MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode())
            report.files[carrier] = manifest
        conn.rollback()
    report.removed = _remove_departed(folder, set(policy.logistics.csv_carriers))
    return report


def _write_copy(cursor, query, path: Path) -> dict[str, object]:
    partial = path.with_name(path.name + ".partial")
    digest, size = hashlib.sha256(), 0
    try:
        with _private_file(partial) as out, cursor.copy(query) as copy:
            for chunk in copy:
                data = bytes(chunk)
                out.write(data)
                digest.update(data)
                size += len(data)
        os.replace(partial, path)
    except psycopg.Error as exc:
        raise LogisticsError(f"export to {path} failed: {describe_db_error(exc)}; "
                             "the previous file was left in place") from None
    finally:
        partial.unlink(missing_ok=True)
    return {"rows": cursor.rowcount, "bytes": size, "sha256": digest.hexdigest()}


def _private_file(path: Path):
    # Carrier files hold names and addresses: readable by the owner only.
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    with _private_file(partial) as out:
        out.write(data)
    os.replace(partial, path)


def _remove_departed(folder: Path, carriers: set[str]) -> list[str]:
    removed = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in carriers):
        ours = [sub / EXPORT_FILE, sub / MANIFEST_FILE, *sub.glob("*.partial")]
        if any(p.exists() for p in ours):
            for p in ours:
                p.unlink(missing_ok=True)
            removed.append(sub.name)
        if not any(sub.iterdir()):
            sub.rmdir()
    return removed


def handoff_rows_by_carrier(engine: Engine) -> dict[str, int]:
    """How many deliveries each carrier has pending in the hand-off right now."""
    with engine.connect() as conn:
        return dict(conn.execute(_ROWS_BY_CARRIER).all())
