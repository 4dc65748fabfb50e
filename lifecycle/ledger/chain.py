"""Verifying the hash-chained audit trail, and reading the heads that each night anchors.

Migrations 0051 and 0070 put two statement-level triggers on every chained table: before the
statement, an advisory lock per chain, so the ids one statement takes are never interleaved with
another writer's; after it, one link in lifecycle.ledger_links holding the id range, the row
count, the SHA-256 of the rows (form 2: of their binary send form concatenated in id order; form
1, links written before 0070: of their text digests) and the previous link's hash. Cost is one
aggregate and one digest per statement, never a round trip or a digest per row.

Anyone who can write lifecycle.* could rebuild the whole chain after an edit, so each night's
heads are also recorded in the run history (the `ledger_anchor` asset's metadata): verification
checks that every anchored link still has its anchored hash. Findings name a chain, a link, a
row id and a run id, never a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

# The nightly asset check that runs `verify`; the report reads its last verdict from the history.
CHECK_NAME = "ledger_chain_intact"


@dataclass(frozen=True)
class Head:
    """The last link of one chain: what a night anchors outside the database."""

    chain: str
    link_seq: int
    link_hash: str  # hex

    def as_text(self) -> str:
        return f"{self.chain}:{self.link_seq}:{self.link_hash}"

    @classmethod
    def from_text(cls, text: str) -> Head:
        chain, seq, digest = text.split(":")
        return cls(chain, int(seq), digest)


@dataclass(frozen=True)
class Break:
    """The first thing found wrong in a chain: where (link, row id, run id) and what kind."""

    chain: str
    link_seq: int | None
    row_id: int | None
    run_id: str | None
    kind: str

    def line(self) -> str:
        link = f"link {self.link_seq}" if self.link_seq is not None else "no link"
        return (
            f"{self.chain}: {link}, row id {self.row_id if self.row_id is not None else '-'}, "
            f"run {self.run_id or '-'}: {self.kind}"
        )


@dataclass(frozen=True)
class ChainRange:
    """What was verified in one chain: links, rows, and the period they cover."""

    chain: str
    links: int
    rows: int
    first_seq: int | None
    last_seq: int | None
    first_recorded: datetime | None
    last_recorded: datetime | None


@dataclass
class Verification:
    """The verdict over every chain: ranges verified, anchors checked, and the breaks found."""

    ranges: list[ChainRange] = field(default_factory=list)
    anchors_checked: int = 0
    breaks: list[Break] = field(default_factory=list)
    since: datetime | None = None

    @property
    def intact(self) -> bool:
        return not self.breaks

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.ranges)

    def summary(self) -> str:
        """One line for a person: what was verified, or the first broken link."""
        if self.breaks:
            return f"broken: {self.breaks[0].line()}"
        spans = [r.first_recorded for r in self.ranges if r.first_recorded] or [None]
        ends = [r.last_recorded for r in self.ranges if r.last_recorded] or [None]
        period = (
            f" recorded {min(spans):%Y-%m-%d %H:%M} to {max(ends):%Y-%m-%d %H:%M} UTC"
            if spans[0] and ends[0]
            else ""
        )
        return (
            f"intact: {self.rows:,} rows in {sum(r.links for r in self.ranges):,} links of "
            f"{len(self.ranges)} chains{period}; {self.anchors_checked} anchors match"
        )

    def metadata(self) -> dict[str, object]:
        """Counts, link numbers and ids for the check's metadata."""
        data: dict[str, object] = {
            "intact": self.intact,
            "rows_verified": self.rows,
            "anchors_checked": self.anchors_checked,
            "verified": {
                r.chain: f"links {r.first_seq}..{r.last_seq}, {r.rows} rows" if r.links else "empty"
                for r in self.ranges
            },
        }
        if self.breaks:
            data["first_break"] = self.breaks[0].line()
        return data


# The chained tables and their canonical row text, as the migration gave them to the triggers.
_CHAINS = sa.text("""
    SELECT format('%I.%I', n.nspname, c.relname) AS table_name, t.tgargs, t.tgenabled <> 'D' AS enabled
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE t.tgname = 'ledger_link' AND NOT t.tgisinternal
""")


@dataclass(frozen=True)
class Chain:
    """One chained table as its trigger defines it: the row forms of both link forms."""

    name: str
    table: str
    id_column: str
    binary: str  # form 2: an expression giving one row's bytes
    text: str  # form 1: an expression giving one row's canonical text
    enabled: bool


def chains(conn) -> list[Chain]:
    """Every chained table, read back from its `ledger_link` trigger's arguments."""
    found = []
    for table, args, enabled in conn.execute(_CHAINS):
        name, id_column, _run, binary, text = bytes(args).decode().split("\x00")[:5]
        found.append(Chain(name, table, id_column, binary, text, enabled))
    return sorted(found, key=lambda c: c.name)


_HEADS = sa.text("""
    SELECT DISTINCT ON (chain) chain, link_seq, encode(link_hash, 'hex') AS link_hash
    FROM lifecycle.ledger_links ORDER BY chain, link_seq DESC
""")
_FROM_SEQ = sa.text("""
    SELECT coalesce(min(link_seq), 1 + coalesce(max(link_seq), 0)) FROM lifecycle.ledger_links
    WHERE chain = :chain AND (CAST(:since AS timestamptz) IS NULL OR recorded_at >= :since)
""")

# Every link of the chain is checked against its neighbours (links are one per statement, few);
# the rows are re-hashed only for the links from :from_seq on, each through an id-range scan that
# delivers them in id order (no sort), in the form its link was written in (only that branch runs).
_VERIFY = """
WITH links AS (
    SELECT l.*,
           lag(link_hash) OVER w AS before_hash,
           lag(link_seq) OVER w AS before_seq,
           lead(first_id) OVER w AS next_first
    FROM lifecycle.ledger_links l WHERE chain = :chain
    WINDOW w AS (ORDER BY link_seq)
), checked AS (
    SELECT l.link_seq, l.first_id, l.last_id, l.run_id, l.rows, l.recorded_at,
           l.link_hash = lifecycle.ledger_link_hash(l.chain, l.link_seq, l.first_id, l.last_id,
                                                    l.rows, l.content_hash, l.prev_hash) AS link_ok,
           l.prev_hash IS NOT DISTINCT FROM l.before_hash
               AND l.link_seq = coalesce(l.before_seq, 0) + 1 AS order_ok,
           r.n, r.content = l.content_hash AS content_ok,
           (SELECT min({id}) FROM {table} t
             WHERE t.{id} > l.last_id AND t.{id} < coalesce(l.next_first, 9223372036854775807)) AS stray
    FROM links l
    CROSS JOIN LATERAL (
        SELECT * FROM (
            SELECT count(*) AS n, sha256(string_agg(d, ''::bytea)) AS content
            FROM (SELECT {binary} AS d FROM {table} t
                  WHERE t.{id} BETWEEN l.first_id AND l.last_id ORDER BY t.{id}) s
        ) f2 WHERE l.form = 2
        UNION ALL
        SELECT * FROM (
            SELECT count(*) AS n, sha256(string_agg(d, ''::bytea)) AS content
            FROM (SELECT sha256(textsend({text})) AS d FROM {table} t
                  WHERE t.{id} BETWEEN l.first_id AND l.last_id ORDER BY t.{id}) s
        ) f1 WHERE l.form <> 2
    ) r
    WHERE l.link_seq >= :from_seq
)
SELECT (SELECT count(*) FROM checked) AS links, (SELECT coalesce(sum(rows), 0) FROM checked) AS rows,
       (SELECT min(link_seq) FROM checked) AS first_seq, (SELECT max(link_seq) FROM checked) AS last_seq,
       (SELECT min(recorded_at) FROM checked) AS first_recorded,
       (SELECT max(recorded_at) FROM checked) AS last_recorded,
       (SELECT min({id}) FROM {table} t
         WHERE t.{id} < coalesce((SELECT min(first_id) FROM lifecycle.ledger_links WHERE chain = :chain),
                                 9223372036854775807)
           AND :from_seq <= 1) AS stray_before,
       b.*
FROM (SELECT 1) one LEFT JOIN LATERAL (
    SELECT link_seq, first_id, last_id, run_id, rows AS link_rows, n, link_ok, order_ok, content_ok, stray
    FROM checked
    WHERE NOT (link_ok AND order_ok AND content_ok AND n = rows) OR stray IS NOT NULL
    ORDER BY link_seq LIMIT 1
) b ON true
"""


# Which shop a night's anchors belong to: one run history may serve several shop databases (a
# shared Dagster storage, a test server), and an anchor of another shop is no evidence about this one.
_SHOP = sa.text("""
    SELECT encode(sha256(convert_to(current_database() || '/' || coalesce((
        SELECT CAST(extract(epoch FROM min(installed_at)) AS text) FROM lifecycle.installation
    ), ''), 'UTF8')), 'hex')
""")


def shop_identity(engine: Engine) -> str:
    """A stable digest naming this shop database (its name and when lifecycle was installed)."""
    with engine.connect() as conn:
        return conn.execute(_SHOP).scalar()[:16]


def heads(engine: Engine) -> list[Head]:
    """The last link of every chain now: what tonight's run records as its anchor."""
    with engine.connect() as conn:
        return [Head(**row) for row in conn.execute(_HEADS).mappings()]


def _first_break(chain: str, row) -> Break | None:
    if row.link_seq is None:
        return None
    if not row.link_ok:
        kind = "the link itself was altered (its hash does not match its fields)"
    elif not row.order_ok:
        kind = "the link before it is missing, altered or out of order"
    elif row.n < row.link_rows:
        kind = f"{row.link_rows - row.n} of its {row.link_rows} rows are missing (deleted)"
    elif row.n > row.link_rows:
        kind = f"{row.n - row.link_rows} rows were added to its id range"
    elif not row.content_ok:
        kind = "a row in its id range was altered or reordered"
    else:
        return Break(
            chain,
            row.link_seq,
            row.stray,
            row.run_id,
            "a row after it belongs to no link (inserted around the triggers)",
        )
    return Break(chain, row.link_seq, row.first_id, row.run_id, kind)


def verify(
    engine: Engine, anchors: list[Head] | None = None, since: datetime | None = None
) -> Verification:
    """Recomputes every chain (links recorded since `since`, each linked to the one before) and
    checks each anchor against the link it names."""
    result = Verification(since=since)
    with engine.connect() as conn:
        for each in chains(conn):
            chain = each.name
            if not each.enabled:
                result.breaks.append(
                    Break(chain, None, None, None, "its trigger is disabled: inserts go unlinked")
                )
            from_seq = conn.execute(_FROM_SEQ, {"chain": chain, "since": since}).scalar()
            sql = _VERIFY.format(
                table=each.table, id=f'"{each.id_column}"', binary=each.binary, text=each.text
            )
            row = conn.execute(sa.text(sql), {"chain": chain, "from_seq": from_seq}).one()
            result.ranges.append(
                ChainRange(
                    chain,
                    row.links,
                    int(row.rows),
                    row.first_seq,
                    row.last_seq,
                    row.first_recorded,
                    row.last_recorded,
                )
            )
            found = _first_break(chain, row)
            if found is None and row.stray_before is not None:
                found = Break(
                    chain,
                    None,
                    row.stray_before,
                    None,
                    "a row before the first link belongs to no link",
                )
            if found:
                result.breaks.append(found)
        result.breaks.extend(_check_anchors(conn, anchors or [], result))
    result.breaks.sort(key=lambda b: (b.chain, b.link_seq or 0))
    return result


_ANCHORED = sa.text("""
    SELECT a.chain, a.seq, a.digest, l.run_id, l.first_id,
           l.link_seq IS NOT NULL AS present, encode(l.link_hash, 'hex') = a.digest AS same
    FROM unnest(CAST(:chains AS text[]), CAST(:seqs AS bigint[]), CAST(:digests AS text[])) AS a(chain, seq, digest)
    LEFT JOIN lifecycle.ledger_links l ON l.chain = a.chain AND l.link_seq = a.seq
    ORDER BY a.chain, a.seq
""")


def _check_anchors(conn, anchors: list[Head], result: Verification) -> list[Break]:
    if not anchors:
        return []
    rows = conn.execute(
        _ANCHORED,
        {
            "chains": [a.chain for a in anchors],
            "seqs": [a.link_seq for a in anchors],
            "digests": [a.link_hash for a in anchors],
        },
    ).all()
    result.anchors_checked = len(rows)
    breaks = []
    for row in rows:
        if not row.present:
            breaks.append(
                Break(
                    row.chain,
                    row.seq,
                    None,
                    None,
                    "an anchored link is gone (the chain was truncated after it)",
                )
            )
        elif not row.same:
            breaks.append(
                Break(
                    row.chain,
                    row.seq,
                    row.first_id,
                    row.run_id,
                    "the link differs from the hash anchored in the run history (chain rewritten)",
                )
            )
    return breaks[:1] if breaks else []
