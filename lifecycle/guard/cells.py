"""Small cells: every row of a published table covers at least k customers, or it could single
one out.

A published table is any analytics relation with a `customers` column of a numeric type, whoever
made it; one SQL statement counts the rows that break the rules inside the database
(lifecycle.guard.counts), reading as the guard's reader (lifecycle.guard.reader). Only a column
named `customers` is read: a count kept under another name (`buyers`) is not a published count
to this check (docs/guard.md).
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
UNITS_COLUMN = "units"  # what a published row counts of its customers' lines
SCAN = "small_cells"  # its positions (lifecycle.guard.changes)

# Compared as numeric, so a float, real, numeric(p,s) or a domain over any of them is read like a
# bigint (format_type names them all differently). A count that is NULL, negative or NaN is no
# count of people, so it is a small cell too; 0 is a row of no one (a week without sales).
_COUNT = f"{CUSTOMERS_COLUMN}::numeric"
_SMALL = (
    f"{_COUNT} IS NULL OR {_COUNT} < 0 OR {_COUNT} = 'NaN' OR ({_COUNT} > 0 AND {_COUNT} < {{k}})"
)
# A row of no one has no lines: units beside customers = 0 mean the count hides who bought them.
_UNITS_WITHOUT_CUSTOMERS = f"{_COUNT} = 0 AND {UNITS_COLUMN}::numeric <> 0"


def _numeric(relation: Relation, name: str) -> bool:
    return any(c.name == name and c.numeric for c in relation.columns)


def _published(relation: Relation) -> bool:
    return _numeric(relation, CUSTOMERS_COLUMN)


def _rules(relation: Relation, small: str) -> list[counts.Rule]:
    rules = [counts.Rule(CUSTOMERS_COLUMN, "small_cell", condition=small)]
    if _numeric(relation, UNITS_COLUMN):
        rules.append(
            counts.Rule(
                CUSTOMERS_COLUMN, "units_without_customers", condition=_UNITS_WITHOUT_CUSTOMERS
            )
        )
    return rules


@scan
def small_cells(engine: Engine, policy: Policy, reader: Engine | None = None) -> CheckResult:
    """Every row of a published table (one with a numeric `customers` count) covers at least k
    customers, and its count is a count.

    A row with customers = 0 stands for no one (a week without sales) and is not a small cell,
    unless the row carries units (a `units` column other than 0): someone bought them.
    """
    k = policy.analytics.min_customers_per_cell
    reader = reader or reader_engine(engine)
    small = _SMALL.format(k=int(k))
    # The rules are part of what a clean relation was compared with: a new rule reads it again.
    tonight = changes.plan(engine, SCAN, f"k={k}|{small}|{_UNITS_WITHOUT_CUSTOMERS}")
    with reader.connect() as conn:
        published = [r for r in tonight.wanted(discover(conn)) if _published(r)]
    suites = {r.name: _rules(r, small) for r in published}
    details = {
        "small_cell": (
            f"rows cover fewer than k={k} customers (analytics.min_customers_per_cell), or their "
            "count is NULL, negative or not a number; fold or withhold them before publishing"
        ),
        "units_without_customers": (
            f"rows count 0 customers but units other than 0, so the {UNITS_COLUMN} were bought "
            "by customers the count does not show; count them, or withhold the rows"
        ),
    }
    outcomes = counts.validate(reader, ANALYTICS, suites)
    findings = [
        Finding(
            f"{ANALYTICS}.{o.relation}",
            o.column,
            "check_error" if o.error else o.kind,
            o.count,
            detail=details.get(o.kind, details["small_cell"]),
        )
        for o in outcomes
    ]
    tonight.save(engine, [r.name for r in published], [o.relation for o in outcomes])
    return CheckResult(
        findings=findings,
        scanned={"relations": len(published), "k": k, **tonight.metadata(len(published))},
    )
