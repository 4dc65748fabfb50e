"""The proofs that a carrier gets no more than the policy allows, run after every refresh.

Three checks, each a `lifecycle.checks.CheckResult` whose findings name the column, the order ids
or the role, how many rows, and the fix: the hand-off has only allow-listed columns; it holds no
order finished before the last refresh began; and each carrier role, connected as itself, reads
its own rows and granted columns only, no other relation, and cannot write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.checks import CheckResult, Finding
from lifecycle.db import describe_db_error
from lifecycle.logistics.access import role_name
from lifecycle.logistics.handoff import HANDOFF, HANDOFF_COLUMNS, Selection
from lifecycle.orders import SAMPLE_IDS
from lifecycle.policy import LOGISTICS_FIELDS, LOGISTICS_KEYS, Policy, quote_ident
from lifecycle.tables import HANDOFF_TABLE

# A carrier name can never look like this (names are identifiers), so no role may see its probe row.
OUTSIDER = "~no_such_carrier"

_COLUMNS = sa.text("""
    SELECT column_name FROM information_schema.columns
    WHERE table_schema = 'logistics' AND table_name = 'handoff' ORDER BY ordinal_position
""")


def check_columns(engine: Engine, policy: Policy) -> CheckResult:
    """The hand-off has exactly the allow-listed columns; those the policy leaves out are empty."""
    started = time.perf_counter()
    handed_off = policy.logistics.fields
    with engine.connect() as conn:
        present = conn.execute(_COLUMNS).scalars().all()
        left_out = [c for c in LOGISTICS_FIELDS if c in present and c not in handed_off]
        filled: dict[str, int] = {}
        if left_out:
            counts = ", ".join(f"count({quote_ident(c)})" for c in left_out)
            values = conn.execute(sa.text(f"SELECT {counts} FROM {HANDOFF}")).one()
            filled = {c: n for c, n in zip(left_out, values, strict=True) if n}
    unexpected = [c for c in present if c not in HANDOFF_COLUMNS]
    missing = [c for c in HANDOFF_COLUMNS if c not in present]
    drop = f"ALTER TABLE {HANDOFF_TABLE} DROP COLUMN"
    findings = [
        Finding(
            HANDOFF_TABLE,
            c,
            "column_not_on_allow_list",
            0,
            detail=f"drop it ({drop} {c}) and run the erasure",
        )
        for c in unexpected
    ]
    findings += [
        Finding(HANDOFF_TABLE, c, "missing_column", 0, detail="run `lifecycle db upgrade`")
        for c in missing
    ]
    findings += [
        Finding(
            HANDOFF_TABLE,
            c,
            "left_out_field_holds_values",
            n,
            detail="the policy does not hand it off; run the refresh",
        )
        for c, n in filled.items()
    ]
    return CheckResult(
        findings=findings,
        figures={
            "columns": list(present),
            "unexpected_columns": unexpected,
            "missing_columns": missing,
            "left_out_fields_holding_values": filled,
            "handed_off_fields": list(handed_off),
        },
        seconds=time.perf_counter() - started,
    )


def _finished_sql(q: Selection) -> str:
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
                    WHEN NOT ({q.in_delivery}) THEN 'not_awaiting_delivery'
                    WHEN h.carrier <> ALL(CAST(:carriers AS text[])) THEN 'carrier_not_in_policy'
                    ELSE 'carrier_changed' END AS reason,
               CASE WHEN last.snapshot IS NULL OR {q.oid} IS NULL OR {xmin} < 3 THEN true
                    ELSE pg_visible_in_snapshot(CAST(CAST({widened} AS text) AS xid8),
                                                last.snapshot)
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


_FINISHED = {
    "order_gone": "deleted",
    "not_awaiting_delivery": "no longer awaiting delivery",
    "carrier_changed": "given another carrier",
}


def _finished_fix(reason: str) -> str:
    if reason == "carrier_not_in_policy":
        return "rows of a carrier the policy does not list; run the refresh, which removes them"
    return (
        f"orders {_FINISHED.get(reason, reason)} before the last refresh began; "
        "run the refresh and find what kept them"
    )


def check_finished_orders_gone(engine: Engine, policy: Policy) -> CheckResult:
    """No hand-off row for an order that was delivered, cancelled, purged or re-assigned when the
    last refresh began; orders that changed since are counted and leave at the next refresh."""
    started = time.perf_counter()
    statement = sa.text(_finished_sql(Selection(policy)))
    with engine.connect() as conn:
        rows = conn.execute(statement, {"carriers": list(policy.logistics.carriers)}).all()
    failing = {reason: n for reason, before, n, _ in rows if before}
    since = {reason: n for reason, before, n, _ in rows if not before}
    sample = sorted(i for _, before, _, ids in rows if before for i in ids or [])[:SAMPLE_IDS]
    findings = [
        Finding(
            HANDOFF_TABLE,
            "order_id",
            reason,
            n,
            detail=_finished_fix(reason),
            samples=tuple(str(i) for i in ids or []),
        )
        for reason, before, n, ids in sorted(rows, key=lambda row: row[0])
        if before
    ]
    return CheckResult(
        findings=findings,
        figures={
            "finished_rows": sum(failing.values()),
            "finished_by_reason": failing,
            "finished_sample_order_ids": sample,
            "changed_since_refresh": sum(since.values()),
            "changed_since_refresh_by_reason": since,
        },
        seconds=time.perf_counter() - started,
    )


_RELATIONS = sa.text(f"""
    SELECT format('%I.%I', n.nspname, c.relname)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND NOT starts_with(n.nspname, 'pg_')
      AND c.oid <> CAST('{HANDOFF_TABLE}' AS regclass)
    ORDER BY 1
""")
_PROBE = sa.text(f"""
    INSERT INTO {HANDOFF} (order_id, carrier)
    SELECT -9223372036854775807 + i, c
    FROM unnest(CAST(:carriers AS text[])) WITH ORDINALITY AS p(c, i)
    ON CONFLICT (order_id) DO NOTHING
""")
_SEEN = sa.text(f"SELECT carrier, count(*) FROM {HANDOFF} GROUP BY carrier")
_WRITES = (
    f"INSERT INTO {HANDOFF} (order_id, carrier) SELECT 0, '' WHERE false",
    f"UPDATE {HANDOFF} SET carrier = carrier WHERE false",
    f"DELETE FROM {HANDOFF} WHERE false",
)


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


@dataclass
class _RoleView:
    """What one carrier role could read and do, probed while acting as it."""

    seen: dict[str, int]
    columns: set[str]
    relations: list[str]
    writes: list[str]


def _probe_role(conn: Connection, relations: list[str]) -> _RoleView:
    """Tries, as the current role, to read the hand-off, each column, every other relation, and to
    write: each in a savepoint, with LIMIT 0 or WHERE false; only counts per carrier are read."""
    can_read = _allowed(conn, f"SELECT carrier FROM {HANDOFF} LIMIT 0")
    return _RoleView(
        seen=dict(conn.execute(_SEEN).all()) if can_read else {},
        columns={
            c for c in HANDOFF_COLUMNS if _allowed(conn, f"SELECT {c} FROM {HANDOFF} LIMIT 0")
        },
        relations=[r for r in relations if _allowed(conn, f"SELECT 1 FROM {r} LIMIT 0")],
        writes=[w.split()[0] for w in _WRITES if _allowed(conn, w)],
    )


def _role_findings(
    role: str, carrier: str, view: _RoleView, own: int, expected: set[str]
) -> list[Finding]:
    """What one carrier role could do that it should not, or could not see that it should."""
    others = {c: n for c, n in view.seen.items() if c != carrier}
    own_seen = view.seen.get(carrier, 0)
    refresh = "run the hand-off refresh"
    findings = []
    if others:
        findings.append(
            Finding(
                HANDOFF_TABLE,
                "carrier",
                "other_carriers_rows_visible",
                sum(others.values()),
                samples=tuple(sorted(others)),
                detail=(
                    f"{role} sees {sum(others.values())} rows of other carriers; "
                    f"check the row policies and grants on {HANDOFF_TABLE}"
                ),
            )
        )
    if own_seen != own:
        findings.append(
            Finding(
                HANDOFF_TABLE,
                "",
                "own_rows_hidden",
                abs(own - own_seen),
                detail=f"{role} sees {own_seen} of its {own} rows; {refresh} to restore its grants "
                "and row policy",
            )
        )
    findings += [
        Finding(
            HANDOFF_TABLE,
            c,
            "column_readable",
            0,
            detail=f"{role} reads it, the policy does not hand it off; {refresh}",
        )
        for c in sorted(view.columns - expected)
    ]
    findings += [
        Finding(
            HANDOFF_TABLE,
            c,
            "column_not_readable",
            0,
            detail=f"{role} cannot read it, the policy hands it off; {refresh}",
        )
        for c in sorted(expected - view.columns)
    ]
    findings += [
        Finding(
            relation,
            "",
            "relation_readable",
            0,
            detail=f"{role} can read it; revoke it (REVOKE ALL ON {relation} "
            f"FROM {role}, and from PUBLIC)",
        )
        for relation in view.relations
    ]
    findings += [
        Finding(
            HANDOFF_TABLE,
            "",
            "write_allowed",
            0,
            detail=f"{role} may {verb} on {HANDOFF_TABLE}; revoke it "
            f"(REVOKE {verb} ON {HANDOFF_TABLE} FROM {role})",
        )
        for verb in view.writes
    ]
    return findings


def check_carrier_isolation(engine: Engine, policy: Policy) -> CheckResult:
    """Connects as each carrier role and proves it reads only its own hand-off rows, only the
    granted columns, and no other table or view, and cannot write.

    One probe row per configured carrier (and one for no carrier at all) is added inside the
    check's transaction and rolled back, so the proof holds even for a carrier with no orders.
    """
    started = time.perf_counter()
    carriers = list(policy.logistics.carriers)
    expected_columns = set(LOGISTICS_KEYS + policy.logistics.fields)
    findings: list[Finding] = []
    per_role: dict[str, dict[str, object]] = {}
    with engine.connect() as conn, conn.begin():
        relations = conn.execute(_RELATIONS).scalars().all()
        conn.execute(_PROBE, {"carriers": carriers + [OUTSIDER]})
        totals = dict(conn.execute(_SEEN).all())
        for carrier in policy.logistics.role_carriers:
            role = role_name(carrier)
            try:
                with conn.begin_nested():
                    conn.execute(sa.text(f"SET LOCAL ROLE {quote_ident(role)}"))
            except sa.exc.DBAPIError as exc:
                findings.append(
                    Finding(
                        role,
                        "",
                        "cannot_act_as_role",
                        0,
                        detail=(
                            f"{describe_db_error(exc)}; run the hand-off refresh, which creates it, "
                            "as a user allowed to SET ROLE to it"
                        ),
                    )
                )
                continue
            view = _probe_role(conn, relations)
            conn.execute(sa.text("RESET ROLE"))
            own = totals.get(carrier, 0)
            per_role[role] = {
                "own_rows_seen": view.seen.get(carrier, 0),
                "own_rows": own,
                "other_carriers_rows_seen": sum(n for c, n in view.seen.items() if c != carrier),
                "readable_columns": sorted(view.columns),
                "readable_relations": view.relations,
                "writes_allowed": view.writes,
            }
            findings += _role_findings(role, carrier, view, own, expected_columns)
        conn.rollback()
    return CheckResult(
        findings=findings,
        scanned={"carrier_roles": len(policy.logistics.role_carriers)},
        figures={"roles": per_role, "relations_probed": len(relations)},
        seconds=time.perf_counter() - started,
    )
