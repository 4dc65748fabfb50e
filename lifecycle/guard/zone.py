"""The analytics zone as the catalog shows it now: every table, view and materialized view in schema
`analytics`, whoever made it, with its columns and which of them hold text.

Names found here did not come from the policy, so they may be anything ("Q3 Export"): every
statement quotes them through `quote_name` and `relation_sql`.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.shown_tables import ShownTable

ANALYTICS = "analytics"

_RELKINDS = {
    "r": "table",
    "p": "partitioned table",
    "v": "view",
    "m": "materialized view",
    "f": "foreign table",
}


@dataclass(frozen=True)
class Column:
    """A column of a zone relation, with how the scans can read it as text."""

    name: str
    type: str
    text: bool  # a string type: regexes apply directly
    castable: bool  # json, xml, arrays of text...: read as ::text
    numeric: bool = False  # any numeric type or a domain over one (pg_type.typcategory 'N')


@dataclass(frozen=True)
class Relation:
    """A table, view or materialized view in the analytics zone, as found in the catalog."""

    name: str
    kind: str
    columns: tuple[Column, ...]

    @property
    def table(self) -> str:
        """How findings name it: schema and name, unquoted."""
        return f"{ANALYTICS}.{self.name}"

    @property
    def text_columns(self) -> list[Column]:
        """The columns whose values can be read as text: what the value scans inspect."""
        return [c for c in self.columns if c.text or c.castable]


_DISCOVER = sa.text("""
    SELECT c.relname, c.relkind::text AS relkind, a.attname,
           format_type(a.atttypid, a.atttypmod) AS type, t.typcategory::text AS category,
           t.typname, et.typcategory::text AS element_category
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
    WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND NOT c.relispartition
    ORDER BY c.relname, a.attnum
""")


def discover(conn: Connection, schema: str = ANALYTICS) -> list[Relation]:
    """Every relation in `schema` now, with its columns and which of them hold text."""
    found: dict[str, tuple[str, list[Column]]] = {}
    for r in conn.execute(_DISCOVER, {"schema": schema}):
        _, columns = found.setdefault(r.relname, (_RELKINDS[r.relkind], []))
        if r.attname is None:
            continue
        text = r.category == "S"
        castable = not text and (
            (r.category == "U" and r.typname != "bytea") or r.element_category in ("S", "U")
        )
        columns.append(Column(r.attname, r.type, text, castable, numeric=r.category == "N"))
    return [Relation(name, kind, tuple(cols)) for name, (kind, cols) in found.items()]


def quote_name(conn_or_engine: Connection | Engine, name: str) -> str:
    """Quotes a discovered name (it did not come from the policy, so it may be anything)."""
    return conn_or_engine.dialect.identifier_preparer.quote_identifier(name)


def relation_sql(conn_or_engine: Connection | Engine, relation: str) -> str:
    """The zone relation `relation`, schema-qualified and quoted for a statement."""
    return f"{quote_name(conn_or_engine, ANALYTICS)}.{quote_name(conn_or_engine, relation)}"


# ------------------------------------------------------------ the inventory, for the guard asset


@dataclass(frozen=True)
class Zone:
    """The analytics zone's relations and their estimated sizes, for the guard asset's metadata."""

    relations: list[tuple[str, str, int | None]]

    def metadata(self) -> dict[str, object]:
        """How many relations and their names: what the asset's materialization records."""
        return {
            "relation_count": len(self.relations),
            "relation_names": [name for name, _, _ in self.relations],
        }

    def table(self) -> ShownTable:
        """The relations as a table, with kind and estimated rows, for a person to read."""
        return ShownTable.of(
            ["relation", "kind", "rows (estimate)"],
            [[f"{ANALYTICS}.{name}", kind, _estimate(rows)] for name, kind, rows in self.relations],
            {2},
        )


def _estimate(rows: int | None) -> str:
    """pg_class.reltuples as a person reads it: -1 means the table was never analysed (so the
    planner has no estimate yet), and a view has no rows of its own."""
    if rows is None:
        return "– (no rows of its own)"
    if rows < 0:
        return "not analysed yet"
    return f"{rows:,}"


_INVENTORY = sa.text("""
    SELECT c.relname, c.relkind::text AS relkind,
           CASE WHEN c.relkind IN ('r', 'm') THEN c.reltuples::bigint
                WHEN c.relkind = 'p' THEN (
                    SELECT CASE WHEN bool_and(p.reltuples >= 0) THEN sum(p.reltuples)::bigint
                                ELSE -1 END
                    FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid
                    WHERE i.inhparent = c.oid)
           END AS estimate
    FROM pg_class c
    WHERE c.relnamespace = to_regnamespace(:schema)::oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND NOT c.relispartition
    ORDER BY c.relname
""")


def zone_inventory(engine: Engine) -> Zone:
    """What is in the analytics zone now, from the catalog (no table is read)."""
    with engine.connect() as conn:
        rows = conn.execute(_INVENTORY, {"schema": ANALYTICS})
        return Zone([(r.relname, _RELKINDS[r.relkind], r.estimate) for r in rows])
