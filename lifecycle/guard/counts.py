"""Rule breaks counted inside the database: one statement per relation, counts only.

The guard's rules (a column's values must not match a pattern; no row may meet a condition) are
SQL already, so each relation is read once with one `count(*) FILTER (WHERE ...)` per rule and
only the counts come back. Great Expectations ran the same rules as one suite per relation, but
its start-up (import, data context, data source, assets) cost 18.8 s cold and 4.75 s warm on a
5,000-order shop where these statements take well under a second (docs/guard.md, "Counting");
its suites are still built from the same rules (lifecycle.guard.gx) for whoever wants GX's
validation results.

A relation whose statement fails is read again rule by rule, each in a savepoint, so the error
is pinned to the column and kind it belongs to and the other rules still count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.guard.patterns import sql_literal
from lifecycle.guard.zone import quote_name


@dataclass(frozen=True)
class Rule:
    """One rule on one relation: which column and kind of leak it looks for, as a regex the
    column's values must not match, or an SQL condition no row may meet."""

    column: str
    kind: str
    regex: str | None = None
    condition: str | None = None

    def sql(self, conn: Connection | Engine) -> str:
        """The rule as a boolean SQL expression over one row (literals only, never a parameter)."""
        if self.regex is not None:
            return f"{quote_name(conn, self.column)} ~ {sql_literal(self.regex)}"
        return f"({self.condition})"

    def unexpected_rows_query(self) -> str:
        """GX's query template: one constant per offending row, never a value; braces escaped."""
        condition = self.condition.replace("{", "{{").replace("}", "}}")
        return f"SELECT 1 AS hit FROM {{batch}} WHERE {condition}"


@dataclass(frozen=True)
class Outcome:
    """How many rows of a relation broke one rule, or why it could not be told (`error`)."""

    relation: str
    column: str
    kind: str
    count: int
    error: str | None = None


def _error(exc: Exception) -> str:
    """The error's SQLSTATE and class: its message may quote a value (a cast error does)."""
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    return f"{sqlstate}: {type(orig).__name__}" if sqlstate else type(exc).__name__


def _counts(conn: Connection, table: str, rules: list[Rule], where: str | None) -> list[int]:
    filters = ", ".join(f"count(*) FILTER (WHERE {rule.sql(conn)})" for rule in rules)
    rows = f" WHERE {where}" if where else ""
    return list(conn.execute(sa.text(f"SELECT {filters} FROM {table}{rows}")).one())


def _relation(
    conn: Connection, table: str, relation: str, rules: list[Rule], where: str | None = None
) -> list[Outcome]:
    try:
        with conn.begin_nested():
            counts = _counts(conn, table, rules, where)
    except sa.exc.DBAPIError as exc:
        try:
            with conn.begin_nested():
                conn.execute(sa.text(f"SELECT 1 FROM {table} LIMIT 0"))
        except sa.exc.DBAPIError:  # the relation itself cannot be read: one error, not one a rule
            return [Outcome(relation, "", "relation", 0, error=_error(exc))]
        outcomes = []
        for rule in rules:  # pin the error to its rule; the others still count
            try:
                with conn.begin_nested():
                    [count] = _counts(conn, table, [rule], where)
            except sa.exc.DBAPIError as exc:
                outcomes.append(Outcome(relation, rule.column, rule.kind, 0, error=_error(exc)))
                continue
            if count:
                outcomes.append(Outcome(relation, rule.column, rule.kind, count))
        return outcomes
    return [
        Outcome(relation, rule.column, rule.kind, count)
        for rule, count in zip(rules, counts, strict=True)
        if count
    ]


def validate(
    engine: Engine,
    schema: str,
    suites: dict[str, Iterable[Rule]],
    rows: dict[str, str] | None = None,
) -> list[Outcome]:
    """Counts each relation's rule breaks in one statement; returns the breaks and errors only.
    `rows` limits a relation to the rows meeting its condition (lifecycle.guard.new_rows: the rows
    written since its last clean scan); the others are read whole."""
    outcomes: list[Outcome] = []
    rows = rows or {}
    with engine.connect() as conn:
        for relation, rules in suites.items():
            rules = list(rules)
            if rules:
                table = f"{quote_name(conn, schema)}.{quote_name(conn, relation)}"
                outcomes += _relation(conn, table, relation, rules, rows.get(relation))
    return outcomes
