"""Column names: an analytics column named like a personal one is a leak whatever it holds today."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.checks import CheckResult, Finding
from lifecycle.guard.patterns import column_family
from lifecycle.guard.scan import scan
from lifecycle.guard.zone import Relation, discover, quote_name, relation_sql
from lifecycle.policy import Policy

FIX = "drop or aggregate the column, or rename it if it holds nothing personal"


def _non_null_counts(conn: Connection, relation: Relation, columns: list[str]) -> dict[str, int]:
    counts = ", ".join(f"count({quote_name(conn, c)})" for c in columns)
    row = conn.execute(sa.text(f"SELECT {counts} FROM {relation_sql(conn, relation.name)}")).one()
    return dict(zip(columns, row, strict=True))


def _flagged(relation: Relation, policy: Policy) -> dict[str, tuple[str, str]]:
    """The relation's columns named like a personal one: column -> (kind, why)."""
    named = {c: spec.table for spec in policy.raw.tables().values() for c in spec.personal_columns}
    orders = policy.raw.orders
    customer_id = orders.columns["customer_id"]
    flagged = {}
    for column in relation.columns:
        if column.name in named:
            flagged[column.name] = (
                "policy_personal_column",
                f"named like {named[column.name]}.{column.name}, personal in the policy",
            )
        elif column.name == customer_id:
            flagged[column.name] = (
                "customer_id_column",
                f"named like {orders.table}.{customer_id}, the shop's customer id",
            )
        elif family := column_family(column.name):
            flagged[column.name] = (
                f"{family}_column",
                f"name belongs to the personal '{family}' family",
            )
    return flagged


@scan
def personal_column_names(engine: Engine, policy: Policy) -> CheckResult:
    """No analytics column is named like a personal column of the policy or a personal family."""
    result = CheckResult()
    with engine.connect() as conn:
        relations = discover(conn)
        result.scanned = {
            "relations": len(relations),
            "columns": sum(len(r.columns) for r in relations),
        }
        for relation in relations:
            flagged = _flagged(relation, policy)
            if not flagged:
                continue
            counts = _non_null_counts(conn, relation, list(flagged))
            for column, (kind, why) in flagged.items():
                result.findings.append(
                    Finding(relation.table, column, kind, counts[column], detail=f"{why}; {FIX}")
                )
    return result
