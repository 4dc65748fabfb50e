"""Seals: what one verification proved, so the next re-hashes only the links written since.

Re-hashing every link costs a pass that serialises and digests every row ever written, and grows
with the history (issue 13: a night's cost follows the night's new work). A seal records, per
chain, the links found intact (up to `link_seq`, named by its hash), the id range and row count
they cover, and the transaction horizon at the moment the verification began: the next
transaction id then (`horizon`) and those still running (`in_progress`), as the 32-bit ids a row
version's `xmin` holds. A sealed verification then proves the sealed range untouched with one pass
that reads no column:

- the same number of rows in the id range (a DELETE, or a row forged into it, changes it);
- no row version in it written at or after the horizon, nor by a transaction that was running then
  (an UPDATE, a DELETE and re-INSERT, a TRUNCATE and reload all leave a new `xmin`);
- the sealed link still there with its hash, and every link still hashing to its fields and
  following the one before (the links are few and checked in full every time).

A row version's `xmin` only means something in the database that wrote it: a dump restored into
another cluster, or a cluster whose transaction counter was set back, may hold rows whose `xmin`
lies before a copied seal's horizon although they were written after it. So a seal is used only in
the database it names (same system identifier, same oid) and only while its 64-bit horizon is not
ahead of that cluster's transaction counter; otherwise, or when the job's role may not read
`pg_control_system()`, that chain is re-hashed in full and its mode says why.

Only the links after the sealed one are re-hashed. The proof is about changes made through SQL:
someone who edits a data file in place keeps the old `xmin` and is found only by the full
recompute, which the nightly runs every `ledger.full_verify_every_days` (docs/compliance.md).
Anything the pass cannot explain (a pg_repack or a dump and reload that wrote new row versions, a
seal older than a billion transactions, a seal that no longer fits the links) is never reported as
tampering: that chain is re-hashed in full instead, which then decides.

Whoever can write lifecycle.* could also write a seal that covers an edit, so each seal's hash is
recorded in the run history by the nightly check that wrote it (`anchors`), and verification uses
only a seal whose fields still hash to what the history recorded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from lifecycle.ledger.anchored import AnchoredText

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_XID_SPACE = 4294967296  # a row version's xmin is the low 32 bits of the 64-bit transaction id
# A seal whose horizon lies further back than this many transactions is not compared by xid age
# (ages wrap at 2^31); that chain is re-hashed in full instead.
MAX_HORIZON_AGE = 1_000_000_000


@dataclass(frozen=True)
class SealAnchor(AnchoredText):
    """A seal as the run history recorded it: which seal row, and the hash of its fields."""

    chain: str
    seal_id: int
    seal_hash: str  # hex


@dataclass(frozen=True)
class Seal:
    """What a verification of one chain proved: links 1..link_seq, their rows, the horizon."""

    chain: str
    link_seq: int
    link_hash: str  # hex
    first_id: int
    last_id: int
    rows: int
    horizon: int  # 64-bit: epoch and xid
    in_progress: tuple[int, ...]  # 64-bit
    verified_at: datetime
    full_at: datetime
    system_id: int | None  # the cluster's system identifier; None when the role could not read it
    database_oid: int
    seal_id: int | None = None

    def digest(self) -> str:
        """SHA-256 of every field but the row id: what the run history records."""
        text = "|".join(
            str(part)
            for part in (
                self.chain,
                self.link_seq,
                self.link_hash,
                self.first_id,
                self.last_id,
                self.rows,
                self.horizon,
                ",".join(str(x) for x in sorted(self.in_progress)),
                _micros(self.verified_at),
                _micros(self.full_at),
                "" if self.system_id is None else self.system_id,
                self.database_oid,
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def full_due(self, now: datetime, every: timedelta) -> bool:
        return now - self.full_at >= every


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class Here:
    """The database a verification runs in, and its transaction counter (64-bit) now."""

    system_id: int | None  # None: the role may not execute pg_control_system()
    database_oid: int
    next_xid: int


_MAY_READ_CONTROL = sa.text(
    "SELECT has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')"
)
_HERE = sa.text("""
    SELECT (SELECT oid FROM pg_database WHERE datname = current_database()) AS database_oid,
           CAST(CAST(pg_snapshot_xmax(pg_current_snapshot()) AS text) AS bigint) AS next_xid
""")


def here(conn) -> Here:
    """Which cluster and database this is. pg_control_system() is asked for only when the role may
    execute it (a refused call would abort the transaction); without it no seal is used."""
    system_id = None
    if conn.execute(_MAY_READ_CONTROL).scalar():
        system_id = conn.execute(
            sa.text("SELECT system_identifier FROM pg_control_system()")
        ).scalar()
    row = conn.execute(_HERE).one()
    return Here(system_id, row.database_oid, row.next_xid)


def elsewhere(seal: Seal, now: Here) -> str | None:
    """Why a seal cannot vouch for the row versions of this database, or None when it can. Its
    horizon compares with `xmin` only in the cluster that took it, and only while that cluster's
    transaction counter has not gone back behind it (a restored or reset cluster)."""
    if now.system_id is None:
        return "the job's role may not read the cluster's identity (pg_control_system)"
    if seal.system_id is None:
        return "the seal does not name its cluster"
    if seal.system_id != now.system_id:
        return "the seal was taken on another cluster"
    if seal.database_oid != now.database_oid:
        return "the seal was taken in another database"
    if seal.horizon > now.next_xid:
        return "the seal's horizon is ahead of this cluster's transaction counter"
    if now.next_xid - seal.horizon > MAX_HORIZON_AGE:
        return "the seal is too many transactions old"
    return None


# A snapshot lists the running top-level transactions only, not their subtransactions, whose ids
# a sealed row's new version would carry just as well (SAVEPOINT; UPDATE): the running ids are
# therefore read from the commit log for every id between the snapshot's xmin and xmax. Past this
# many ids (a transaction open for hours on a busy server) no seal is taken that night: the chains
# keep their last trusted seal, and the nightly's cost grows only by the links re-hashed since it.
MAX_SEAL_WINDOW = 1_000_000

# Every chain's head and totals, and the transaction horizon, in one statement: one snapshot, so
# the links a seal names are exactly those committed before its horizon.
_POINT = sa.text("""
    SELECT h.chain, h.link_seq, encode(h.link_hash, 'hex') AS link_hash, t.first_id, h.last_id,
           t.rows, s.xmax AS horizon,
           ARRAY(SELECT CAST(CAST(x AS text) AS bigint) FROM pg_snapshot_xip(s.snap) x
                 UNION
                 SELECT g FROM generate_series(s.xmin, s.xmax - 1) g
                 WHERE s.xmax - s.xmin <= :max_window AND pg_xact_status(CAST(CAST(g AS text) AS xid8)) = 'in progress'
                 ORDER BY 1) AS in_progress,
           s.xmax - s.xmin AS xid_window, now() AS verified_at
    FROM (SELECT snap, CAST(CAST(pg_snapshot_xmin(snap) AS text) AS bigint) AS xmin,
                 CAST(CAST(pg_snapshot_xmax(snap) AS text) AS bigint) AS xmax
          FROM (SELECT pg_current_snapshot() AS snap) c) s,
         (SELECT DISTINCT ON (chain) chain, link_seq, link_hash, last_id
          FROM lifecycle.ledger_links ORDER BY chain, link_seq DESC) h
    JOIN (SELECT chain, min(first_id) AS first_id, sum(rows) AS rows
          FROM lifecycle.ledger_links GROUP BY chain) t USING (chain)
""")


def seal_point(conn, now: Here) -> dict[str, Seal]:
    """Every chain's seal as of now, before its links are verified (full_at still to be set), in
    the database `now` names; none when too many transactions ran meanwhile (MAX_SEAL_WINDOW)."""
    rows = conn.execute(_POINT, {"max_window": MAX_SEAL_WINDOW}).all()
    if any(row.xid_window > MAX_SEAL_WINDOW for row in rows):
        return {}
    return {
        row.chain: Seal(
            row.chain,
            row.link_seq,
            row.link_hash,
            row.first_id,
            row.last_id,
            int(row.rows),
            row.horizon,
            tuple(row.in_progress),
            row.verified_at,
            row.verified_at,
            now.system_id,
            now.database_oid,
        )
        for row in rows
    }


_SAVE = sa.text("""
    INSERT INTO lifecycle.ledger_seals (chain, link_seq, link_hash, first_id, last_id, rows, horizon,
                                        in_progress, verified_at, full_at, system_id,
                                        database_oid, seal_hash)
    VALUES (:chain, :link_seq, decode(:link_hash, 'hex'), :first_id, :last_id, :rows, :horizon,
            CAST(:in_progress AS bigint[]), :verified_at, :full_at, :system_id, :database_oid,
            decode(:seal_hash, 'hex'))
    RETURNING seal_id
""")


def save(engine, seals: list[Seal]) -> list[SealAnchor]:
    """Stores tonight's seals; returns what the run history must record for them to count."""
    anchors = []
    with engine.begin() as conn:
        for seal in seals:
            digest = seal.digest()
            seal_id = conn.execute(
                _SAVE,
                {
                    "chain": seal.chain,
                    "link_seq": seal.link_seq,
                    "link_hash": seal.link_hash,
                    "first_id": seal.first_id,
                    "last_id": seal.last_id,
                    "rows": seal.rows,
                    "horizon": seal.horizon,
                    "in_progress": list(seal.in_progress),
                    "verified_at": seal.verified_at,
                    "full_at": seal.full_at,
                    "system_id": seal.system_id,
                    "database_oid": seal.database_oid,
                    "seal_hash": digest,
                },
            ).scalar()
            anchors.append(SealAnchor(seal.chain, seal_id, digest))
    return anchors


_STORED = sa.text("""
    SELECT seal_id, chain, link_seq, encode(link_hash, 'hex') AS link_hash, first_id, last_id, rows,
           horizon, in_progress, verified_at, full_at, system_id, database_oid
    FROM lifecycle.ledger_seals WHERE seal_id = ANY(CAST(:ids AS bigint[]))
""")


@dataclass
class Trusted:
    """The seal each chain may use (the newest whose fields match its anchor), and the seals that
    differ from their anchor: someone rewrote them."""

    seals: dict[str, Seal]
    forged: list[tuple[SealAnchor, Seal | None]]


def trusted(conn, anchors: list[SealAnchor]) -> Trusted:
    """Reads the anchored seals back and keeps, per chain, the newest one whose fields still hash
    to what the run history recorded; a seal the history does not name is never used."""
    found = Trusted({}, [])
    if not anchors:
        return found
    stored = {
        row.seal_id: Seal(
            row.chain,
            row.link_seq,
            row.link_hash,
            row.first_id,
            row.last_id,
            row.rows,
            row.horizon,
            tuple(row.in_progress),
            row.verified_at,
            row.full_at,
            row.system_id,
            row.database_oid,
            row.seal_id,
        )
        for row in conn.execute(_STORED, {"ids": [a.seal_id for a in anchors]})
    }
    for anchor in sorted(anchors, key=lambda a: a.seal_id):
        seal = stored.get(anchor.seal_id)
        if seal is None:
            continue  # deleted: it only saved work, the chain is re-hashed in full
        if seal.chain != anchor.chain or seal.digest() != anchor.seal_hash:
            found.forged.append((anchor, seal))
            continue
        found.seals[anchor.chain] = seal
    return found


# One pass over the sealed id range reading no column: the rows, those written at or after the
# horizon or by a transaction running then, and how far back the horizon lies; plus the sealed
# links' totals and the sealed head's hash as the links table says now.
_SEALED = """
SELECT count(*) AS n,
       count(*) FILTER (WHERE age(t.xmin) <= age(CAST(CAST(:horizon AS text) AS xid))
                           OR t.xmin = ANY(CAST(CAST(:in_progress AS text[]) AS xid[]))) AS newer,
       age(CAST(CAST(:horizon AS text) AS xid)) AS horizon_age,
       (SELECT min(first_id) FROM lifecycle.ledger_links WHERE chain = :chain) AS links_first,
       (SELECT sum(rows) FROM lifecycle.ledger_links WHERE chain = :chain AND link_seq <= :link_seq)
           AS links_rows,
       (SELECT encode(link_hash, 'hex') || ':' || last_id FROM lifecycle.ledger_links
         WHERE chain = :chain AND link_seq = :link_seq) AS head
FROM {table} t WHERE t.{id} BETWEEN :first_id AND :last_id
"""


def unproven(conn, table: str, id_column: str, seal: Seal) -> str | None:
    """Why the sealed range cannot be proven untouched by the cheap pass, or None when it is."""
    row = (
        conn.execute(
            sa.text(_SEALED.format(table=table, id=f'"{id_column}"')),
            {
                "chain": seal.chain,
                "link_seq": seal.link_seq,
                "first_id": seal.first_id,
                "last_id": seal.last_id,
                "horizon": str(seal.horizon % _XID_SPACE),
                "in_progress": [str(x % _XID_SPACE) for x in seal.in_progress],
            },
        )
        .mappings()
        .one()
    )
    if row["head"] != f"{seal.link_hash}:{seal.last_id}":
        return "the sealed link differs"
    if row["links_first"] != seal.first_id or int(row["links_rows"] or 0) != seal.rows:
        return "the sealed links no longer add up to the seal"
    if not 0 <= row["horizon_age"] <= MAX_HORIZON_AGE:
        return "the seal is too many transactions old"
    if row["n"] != seal.rows:
        return f"{row['n']:,} rows in the sealed range, {seal.rows:,} sealed"
    if row["newer"]:
        return f"{row['newer']:,} row versions written after the seal"
    return None
