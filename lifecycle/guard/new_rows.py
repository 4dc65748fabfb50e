"""Rows written since a zone scan last passed a table clean: all a changed table needs read again.

A relation whose signature changed (lifecycle.guard.changes) used to be read whole. The nightly's
sales refresh rewrites only the days that changed, yet it changes `sales_volume_daily` every
night, so the pattern scan read every day of the table's history every night. A table's row
versions carry the transaction that wrote them (`xmin`), and every row a transaction older than
the last clean scan's snapshot wrote was visible to that scan and passed it; an insert or update
since gives the row a newer `xmin`. So a changed table is read only for rows whose `xmin` is at
least the snapshot xmin stored at its last clean scan, as the raw zone already is for the
fingerprints (lifecycle.guard.raw_values). A freeze keeps a row's xmin (PostgreSQL 9.4 and later
set hint bits instead), so a row written and frozen between two scans still reads as new.

This holds only while the table is the one that was scanned, with the columns it had: its oid,
kind and columns (name, type, and whether a column added with a default fills old rows without
writing them) and the scan's rules are stored beside the position, and any difference reads it
whole. Reading whole
too: views (their rows have no `xmin` of their own), partitioned and foreign tables, tables with
row-level security, a table with no clean scan yet or with findings (a finding is found again every
night until fixed), a full scan (`guard.full_scan_every_days`), and a position from another xid
epoch (a 32-bit `xmin` then does not tell old from new). Rows written in an earlier epoch can
read as new, which costs a read, never a miss.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.guard import positions
from lifecycle.guard.changes import Plan, position_of
from lifecycle.guard.zone import ANALYTICS

SINCE = "rows since:"  # + relation: the snapshot xmin (xid8) taken before its last clean read
SHAPE = "row shape:"  # + relation: its oid, kind and columns then, as a position

_SNAPSHOT_XMIN = sa.text(
    "SELECT CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS text) AS bigint)"
)
# Tables and materialized views: heap rows that carry their writer's transaction id.
_SHAPES = sa.text("""
    SELECT c.relname,
           concat_ws('|', c.oid, c.relkind,
                     (SELECT string_agg(a.attname || ':' || a.atttypid || ':' || a.atthasmissing,
                                        ',' ORDER BY a.attnum)
                      FROM pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)) AS shape
    FROM pg_class c
    WHERE c.relnamespace = to_regnamespace(:schema) AND c.relname = ANY(:names)
      AND c.relkind IN ('r', 'm') AND NOT c.relrowsecurity
""")


@dataclass
class NewRows:
    """Tonight's reading of the changed relations: which are read only for their new rows."""

    scan: str
    plan: Plan
    read_at: int = 0  # the snapshot xmin (xid8) taken before tonight's reads
    shapes: dict[str, int] = field(default_factory=dict)  # relation -> shape, if it has rows' xmin
    since: dict[str, int] = field(default_factory=dict)  # relation -> low 32 bits of its position

    def condition(self, relation: str) -> str | None:
        """The SQL condition that keeps `relation`'s new rows, or None to read it whole."""
        if relation not in self.since:
            return None
        return f"CAST(CAST(xmin AS text) AS bigint) >= {self.since[relation]:d}"

    def conditions(self) -> dict[str, str]:
        """The condition of every relation read only for its new rows."""
        return {name: self.condition(name) for name in self.since}

    def metadata(self) -> dict[str, object]:
        """How many of the relations read were read only for their rows written since."""
        if self.plan.night is None:
            return {}
        return {"relations_read_new_rows_only": len(self.since)}

    def save(self, engine: Engine, read: Iterable[str], dirty: Iterable[str]) -> None:
        """Stores tonight's position and shape for each table read and found clean (a full read
        or one of its new rows: either way every row older than tonight's snapshot has passed);
        forgets them for those with findings, which are read whole again."""
        if self.plan.night is None:
            return
        dirty = set(dirty)
        clean = [name for name in read if name not in dirty and name in self.shapes]
        reached = {SINCE + name: self.read_at for name in clean}
        reached |= {SHAPE + name: self.shapes[name] for name in clean}
        positions.save(engine, self.scan, reached, self.plan.night.now, forward_only=False)
        gone = [name for name in read if name in dirty or name not in self.shapes]
        positions.forget(engine, self.scan, [p + name for name in gone for p in (SINCE, SHAPE)])


def plan(
    conn: Connection, engine: Engine, scan: str, tonight: Plan, read: list[str], compared_with: str
) -> NewRows:
    """Which of the relations `read` tonight (changed, by `tonight`) need only their new rows.

    `compared_with` is what the scan compares rows with (its rules): it is part of each table's
    shape, so new rules read every row again. Takes tonight's snapshot xmin first, before any
    relation is read, on `conn` (any connection: the xmin is the cluster's); positions are read
    from the job's `engine`."""
    rows = NewRows(scan, tonight)
    if tonight.night is None:
        return rows
    rows.read_at = conn.execute(_SNAPSHOT_XMIN).scalar()
    found = conn.execute(_SHAPES, {"schema": ANALYTICS, "names": list(read)}).all()
    rows.shapes = {r.relname: position_of(f"{r.shape}|{compared_with}") for r in found}
    if tonight.full:
        return rows
    stored = positions.positions(
        engine, scan, [p + name for name in rows.shapes for p in (SINCE, SHAPE)]
    )
    for name, shape in rows.shapes.items():
        since = stored.get(SINCE + name)
        if stored.get(SHAPE + name) != shape or since is None:
            continue
        if since >> 32 != rows.read_at >> 32 or since > rows.read_at:
            continue  # another xid epoch: a row's 32-bit xmin does not tell old from new
        rows.since[name] = since & 0xFFFFFFFF
    return rows
