"""Which analytics relations changed since a zone scan last passed them clean, so the nightly reads
only those, with a full scan once `guard.full_scan_every_days` has passed.

A relation's signature comes from the catalog and the cumulative statistics, never from its rows:
its oid, kind, file node (TRUNCATE, VACUUM FULL, REFRESH and column rewrites change it), access
list, columns, view definition, and the rows inserted, updated and deleted
(pg_stat_all_tables); a view's or partitioned table's signature covers every relation it reads
(pg_depend through its rules, pg_inherits), in any schema. The statistics reach the catalog up to
seconds after a writer commits, so each table of the analytics schema itself (aggregates, small)
also carries the count and transaction ids of its row versions (`xmin`, read without any column):
an insert, update or delete committed before the scan changes them at once, and the nightly's own
refresh steps, which write seconds before the guard, are never taken for unchanged. Tables of other
schemas that a view reads rely on the statistics alone (docs/guard.md). When in doubt the relation is read:
a view that calls a function that is not immutable (now(), a function of its author's), a
foreign table. The signature also carries what the scan compares against (its rules, k, the
fingerprints' raw columns, tokenizer and key), so new rules read every relation again. (A raw
value added tonight is compared with the digests the fingerprint scan kept: raw_values.py.)

Signatures are stored as positions (lifecycle.guard.positions, one row per scan and relation)
only for relations that passed clean: a relation with any finding, accepted ones included, is read
again every night. The nightly turns this on around its checks (`incremental`); `lifecycle guard`
and direct calls read every relation and store nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.guard import positions
from lifecycle.guard.zone import ANALYTICS, Relation

FULL_SCAN = "full scan"  # the source whose scanned_at is the last full scan (no relation prefix)
RELATION = "relation:"  # prefix of the sources that are relations


@dataclass(frozen=True)
class Night:
    """The night an incremental scan runs for, and how often the whole zone is read anyway."""

    now: datetime
    full_every: timedelta


_NIGHT: ContextVar[Night | None] = ContextVar("lifecycle_guard_night", default=None)


@contextmanager
def incremental(now: datetime, full_every: timedelta) -> Iterator[None]:
    """Within this block, zone scans read only relations changed since their last clean scan."""
    token = _NIGHT.set(Night(now, full_every))
    try:
        yield
    finally:
        _NIGHT.reset(token)


def night() -> Night | None:
    """The night an incremental scan runs for, or None outside the nightly (read everything)."""
    return _NIGHT.get()


_SIGNATURES = sa.text("""
    WITH RECURSIVE roots AS (
        SELECT c.oid, c.relname AS name FROM pg_class c
        WHERE c.oid = ANY(CAST(:oids AS oid[]))
    ), reads(root, rel) AS (
        SELECT oid, oid FROM roots
        UNION
        SELECT r.root, x.rel FROM reads r CROSS JOIN LATERAL (
            SELECT d.refobjid AS rel FROM pg_rewrite rw
            JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
             AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.rel
            WHERE rw.ev_class = r.rel
            UNION ALL
            SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = r.rel
        ) x
    ), doubtful AS (
        SELECT DISTINCT r.root FROM reads r
        JOIN pg_rewrite rw ON rw.ev_class = r.rel
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
         AND d.refclassid = 'pg_proc'::regclass
        JOIN pg_proc p ON p.oid = d.refobjid
        WHERE p.provolatile <> 'i' OR p.pronamespace <> 'pg_catalog'::regnamespace
        UNION
        SELECT r.root FROM reads r JOIN pg_class c ON c.oid = r.rel
        WHERE c.relkind = 'f' OR c.relrowsecurity  -- a policy's functions would run to count it
    )
    SELECT ro.name, ro.oid IN (SELECT root FROM doubtful) AS doubtful,
           md5(string_agg(concat_ws('|', c.oid, c.relkind, c.relfilenode, c.relacl::text,
                   s.n_tup_ins, s.n_tup_upd, s.n_tup_del,
                   CASE WHEN c.relkind IN ('v', 'm') THEN md5(pg_get_viewdef(c.oid)) END,
                   (SELECT string_agg(a.attname || ':' || a.atttypid || ':' || a.atthasmissing,
                                      ',' ORDER BY a.attnum)
                    FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)),
                   ';' ORDER BY c.oid)) AS signature,
           array_agg(c.oid::regclass::text ORDER BY c.oid) FILTER (
               WHERE c.relkind IN ('r', 'm') AND c.relnamespace = to_regnamespace(:zone_schema)
           ) AS own_tables
    FROM roots ro
    JOIN reads r ON r.root = ro.oid
    JOIN pg_class c ON c.oid = r.rel
    LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
    GROUP BY ro.name, ro.oid
""")

_ZONE_OIDS = sa.text("""
    SELECT coalesce(array_agg(c.oid), '{}') FROM pg_class c
    WHERE c.relnamespace = to_regnamespace(:schema) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND NOT c.relispartition
""")


# Row versions of one analytics table, without reading a column: any committed insert or update
# brings a new transaction id, a delete lowers the count. (A freeze keeps the version's xmin: since
# PostgreSQL 9.4 it only sets hint bits, checked on 15 and 18; lifecycle.guard.new_rows relies on
# it too.)
_VERSIONS = "SELECT count(*), max(CAST(CAST(xmin AS text) AS bigint)), sum(CAST(CAST(xmin AS text) AS bigint)) FROM {}"


def _signatures(conn: Connection, oids: list[int]) -> dict[str, str | None]:
    """Relation name -> signature, or None when only reading it tells (see the module)."""
    rows = conn.execute(_SIGNATURES, {"oids": oids, "zone_schema": ANALYTICS}).all()
    tables = {t for r in rows if not r.doubtful for t in r.own_tables or []}
    # `t` is PostgreSQL's own quoted rendering of a catalog oid (regclass), never the policy's text.
    versions = {t: conn.execute(sa.text(_VERSIONS.format(t))).one() for t in sorted(tables)}
    return {
        r.name: None
        if r.doubtful
        else f"{r.signature}|{[tuple(versions[t]) for t in r.own_tables or []]}"
        for r in rows
    }


def zone_signatures(conn: Connection) -> dict[str, str | None]:
    """Each analytics relation's signature now (None: read it whatever)."""
    return _signatures(conn, conn.execute(_ZONE_OIDS, {"schema": ANALYTICS}).scalar())


def tables_position(conn: Connection, tables: Iterable[str]) -> int:
    """One signature, as a position, for schema-qualified `tables` (the raw zone): any write to
    them changes it, once its statistics have arrived."""
    oids = [conn.execute(sa.text("SELECT to_regclass(:t)::oid"), {"t": t}).scalar() for t in tables]
    found = _signatures(conn, [o for o in oids if o is not None])
    return _position(repr((sorted(found.items(), key=lambda kv: kv[0]), oids)))


def position_of(text: str) -> int:
    """Any text as a bigint position (64 bits of its digest), e.g. what a scan compared with."""
    return _position(text)


def _position(signature: str) -> int:
    """A signature as a bigint position (64 bits of its digest)."""
    return int.from_bytes(hashlib.sha256(signature.encode()).digest()[:8], "big", signed=True)


@dataclass
class Plan:
    """Which relations one zone scan reads tonight, and how it records what passed clean."""

    scan: str
    night: Night | None
    signatures: dict[str, int | None] = field(default_factory=dict)
    unchanged: frozenset[str] = frozenset()
    full: bool = True

    def everything(self) -> Plan:
        """The same night, reading every relation (a scan that cannot rely on what it kept)."""
        return Plan(self.scan, self.night, self.signatures, frozenset(), self.full)

    def wanted(self, relations: list[Relation]) -> list[Relation]:
        """The relations to read: all on a full scan, else those changed or in doubt."""
        return [r for r in relations if r.name not in self.unchanged]

    def metadata(self, read: int) -> dict[str, object]:
        """What the check's metadata says about the reading: relations read and skipped."""
        if self.night is None:
            return {}
        return {
            "relations_scanned": read,
            "relations_unchanged_skipped": len(self.unchanged),
            "full_scan": self.full,
        }

    def save(self, engine: Engine, read: Iterable[str], dirty: Iterable[str]) -> None:
        """Stores the signatures of the relations read and found clean (none outside the nightly);
        forgets those with findings, so they are read again."""
        if self.night is None:
            return
        dirty = set(dirty)
        clean = {
            RELATION + name: self.signatures[name]
            for name in read
            if name not in dirty and self.signatures.get(name) is not None
        }
        if self.full:
            clean[FULL_SCAN] = 0
        positions.save(engine, self.scan, clean, self.night.now, forward_only=False)
        positions.forget(engine, self.scan, [RELATION + name for name in dirty])


def plan(engine: Engine, scan: str, compared_with: str) -> Plan:
    """Tonight's plan for `scan`: outside the nightly (no `incremental` block) every relation; in
    it, the relations whose signature (with `compared_with`: the scan's rules, k, the raw zone's
    signature) differs from the one stored at their last clean scan, or all when a full scan is
    due."""
    night = _NIGHT.get()
    if night is None:
        return Plan(scan, None)
    with engine.connect() as conn:
        found = zone_signatures(conn)
    signatures = {
        name: None if sig is None else _position(f"{sig}|{compared_with}")
        for name, sig in found.items()
    }
    stored = positions.positions(
        engine, scan, [FULL_SCAN, *(RELATION + name for name in signatures)]
    )
    last_full = positions.scanned_at(engine, scan, FULL_SCAN) if FULL_SCAN in stored else None
    if last_full is None or night.now - last_full >= night.full_every:
        return Plan(scan, night, signatures)
    unchanged = frozenset(
        name
        for name, sig in signatures.items()
        if sig is not None and stored.get(RELATION + name) == sig
    )
    return Plan(scan, night, signatures, unchanged, full=False)
