"""The policy held against the live database: every table and column it names must exist and fit."""

from __future__ import annotations

import difflib

from lifecycle.policy.consistency import correctable_not_personal
from lifecycle.policy.errors import PolicyError
from lifecycle.policy.model import Policy

_CATALOG_SQL = """
SELECT table_schema || '.' || table_name AS table, column_name, is_nullable = 'YES' AS nullable,
       data_type
FROM information_schema.columns
WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
"""
# Roles lifecycle keeps as integers of its own: the purge walks orders in integer id ranges, and
# the ledger, the carrier hand-off and the data requests store order and customer ids as bigint.
# A shop whose ids are text (a marketplace's hash ids) failed mid-night with a driver error.
INTEGER_ROLES = {
    "orders": ("order_id", "customer_id"),
    "order_items": ("order_id",),
    "after_sales_cases": ("order_id",),
}
INTEGER_TYPES = ("smallint", "integer", "bigint")  # a domain over one reads as its base type
# Tables that carry the sales change-capture triggers (lifecycle/sales/capture.py): statement
# triggers with transition tables, which PostgreSQL refuses on a view or a foreign table.
TRIGGERED = ("orders", "order_items")
_KINDS = {"VIEW": "view", "FOREIGN": "foreign table"}  # information_schema's table_type, said
_TABLE_TYPES_SQL = """
SELECT table_schema || '.' || table_name, table_type FROM information_schema.tables
WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
"""
_INTEGER_FIX = {
    "order_id": "e.g. one added to the orders as bigint GENERATED ALWAYS AS IDENTITY, with the "
    "same number copied to the order lines and after-sales cases",
    "customer_id": "e.g. a bigint numbering each distinct customer of the shop's own key "
    "(dense_rank() over it)",
}


def check_policy_against_database(policy: Policy, conn) -> None:
    """Fails unless every table and column the policy names exists in the connected database,
    in a form the night can use: personal columns nullable, ids integers, and the orders and
    order lines tables (which carry the change capture), not views. Each problem is one line."""
    catalog: dict[str, set[str]] = {}
    not_null: set[tuple[str, str]] = set()
    types: dict[tuple[str, str], str] = {}
    for table, column, nullable, data_type in conn.exec_driver_sql(_CATALOG_SQL):
        catalog.setdefault(table, set()).add(column)
        types[table, column] = data_type
        if not nullable:
            not_null.add((table, column))
    table_types = dict(conn.exec_driver_sql(_TABLE_TYPES_SQL).all())
    problems = []
    for name, spec in policy.raw.tables().items():
        kind = table_types.get(spec.table, "BASE TABLE")
        if name in TRIGGERED and spec.table in catalog and kind != "BASE TABLE":
            problems.append(
                f"{policy.path.name}: raw.{name}.table: {spec.table} is a "
                f"{_KINDS.get(kind, kind.lower())}; the "
                "sales change capture needs triggers on the table itself, which a view cannot "
                "carry: map the table (a column in another form than lifecycle reads, such as a "
                "status or a time without a zone, can be a generated column on it: "
                "docs/policy.md)"
            )
        if spec.table not in catalog:
            hint = difflib.get_close_matches(spec.table, list(catalog), n=1)
            problems.append(
                f"{policy.path.name}: raw.{name}.table: table '{spec.table}' not found in the database"
                + (f" (did you mean '{hint[0]}'?)" if hint else "")
                + "; run `lifecycle db upgrade` or map the shop's table name"
            )
            continue
        present = catalog[spec.table]
        unused = (
            set() if policy.logistics.carriers else {"carrier"}
        )  # only the carrier hand-off reads it
        named = [("columns", c) for role, c in spec.columns.items() if role not in unused]
        named += [("personal_columns", c) for c in spec.personal_columns]
        named += [("kept_columns", c) for c in spec.kept_columns]
        for field, column in named:
            if column not in present:
                hint = difflib.get_close_matches(column, sorted(present), n=1)
                problems.append(
                    f"{policy.path.name}: raw.{name}.{field}: column '{column}' not in {spec.table}"
                    + (f" (did you mean '{hint[0]}'?)" if hint else "")
                )
        for role in INTEGER_ROLES.get(name, ()):
            column = spec.columns[role]
            found = types.get((spec.table, column))
            if found is not None and found not in INTEGER_TYPES:
                problems.append(
                    f"{policy.path.name}: raw.{name}.columns.{role}: column '{column}' of "
                    f"{spec.table} is {found}; lifecycle keeps order and customer ids as integers "
                    "(its purge walks id ranges, its ledger, hand-off and requests store bigint): "
                    f"map {role} to an integer column that identifies the same thing, "
                    f"{_INTEGER_FIX[role]}"
                )
        for column in spec.personal_columns:
            if (spec.table, column) in not_null:
                problems.append(
                    f"{policy.path.name}: raw.{name}.personal_columns: column '{column}' of {spec.table} "
                    "is NOT NULL, so the purge cannot clear it; make it nullable "
                    f"(ALTER TABLE {spec.table} ALTER COLUMN {column} DROP NOT NULL)"
                )
        overlap = set(spec.personal_columns) & set(spec.columns.values())
        if overlap:
            problems.append(
                f"{policy.path.name}: raw.{name}.personal_columns: {sorted(overlap)} also play a role "
                "the purge needs (an id, status or timestamp); they cannot be cleared"
            )
    catalogue = policy.raw.catalogue
    if catalogue is not None:
        missing = [
            c for c in catalogue.columns.values() if c not in catalog.get(catalogue.table, ())
        ]
        if missing:
            problems.append(
                f"{policy.path.name}: raw.catalogue: {catalogue.table} has no column '{missing[0]}'; "
                "run `lifecycle db upgrade`, map the shop's catalogue, or remove raw.catalogue"
            )
    if not problems:  # every column exists: a near-miss name in personal_columns is the shop's own
        problems = [
            f"{policy.path.name}: {field}: {problem}"
            for field, problem in correctable_not_personal(policy, suspected_typos=True)
        ]
    if problems:
        raise PolicyError(problems)
