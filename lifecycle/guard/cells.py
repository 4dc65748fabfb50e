"""Small cells: every row of a published table covers at least k customers, or it could single
one out.

A published table is any analytics relation with an integer `customers` column, whoever made it;
one SQL statement counts the rows under k inside the database (lifecycle.guard.counts), reading as
the guard's reader (lifecycle.guard.reader).
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from lifecycle.checks import CheckResult, Finding
from lifecycle.guard import changes, counts
from lifecycle.guard.reader import reader_engine
from lifecycle.guard.scan import scan
from lifecycle.guard.zone import ANALYTICS, Relation, discover
from lifecycle.policy import Policy

CUSTOMERS_COLUMN = "customers"  # a published row's count of distinct customers
_COUNT_TYPES = ("bigint", "integer", "smallint", "numeric")
SCAN = "small_cells"  # its positions (lifecycle.guard.changes)


def _published(relation: Relation) -> bool:
    return any(c.name == CUSTOMERS_COLUMN and c.type in _COUNT_TYPES for c in relation.columns)


@scan
def small_cells(engine: Engine, policy: Policy, reader: Engine | None = None) -> CheckResult:
    """Every row of a published table (one with a `customers` count) covers at least k customers.

    A row with customers = 0 stands for no one (a week without sales) and is not a small cell.
    """
    k = policy.analytics.min_customers_per_cell
    reader = reader or reader_engine(engine)
    tonight = changes.plan(engine, SCAN, f"k={k}")
    with reader.connect() as conn:
        published = [r for r in tonight.wanted(discover(conn)) if _published(r)]
    column = CUSTOMERS_COLUMN
    small = f"{column} IS NULL OR ({column} > 0 AND {column} < {int(k)})"
    suites = {r.name: [counts.Rule(column, "small_cell", condition=small)] for r in published}
    detail = (
        f"rows cover fewer than k={k} customers (analytics.min_customers_per_cell); "
        "fold or withhold them before publishing"
    )
    outcomes = counts.validate(reader, ANALYTICS, suites)
    findings = [
        Finding(
            f"{ANALYTICS}.{o.relation}",
            o.column,
            "check_error" if o.error else "small_cell",
            o.count,
            detail=detail,
        )
        for o in outcomes
    ]
    tonight.save(engine, [r.name for r in published], [o.relation for o in outcomes])
    return CheckResult(
        findings=findings,
        scanned={"relations": len(published), "k": k, **tonight.metadata(len(published))},
    )
