"""Keyed fingerprints: does any token of a text equal a personal value still held in the raw zone?

The texts' tokens (lifecycle.guard.tokens) become candidates: HMAC digests in a temp table, from
SQL for a column of the database, from Python for texts that never enter it. The raw zone's
personal values are hashed into the same forms in one pass and joined against them (hits); only
what hit is read again, to count rows (matches). Digests and masked forms only: no value is
copied, and the temp tables are dropped at commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.checks import Finding
from lifecycle.guard.key import SAMPLES, GuardKey, hmac_sql, mask_sql
from lifecycle.guard.provenance import FOLD_DIGITS, FOLD_GROUPS
from lifecycle.guard.tokens import (
    SQL_PARAMS,
    TEXT_GRAM_WORDS,
    is_number,
    norm_sql,
    phone_forms_sql,
    tokens,
    tokens_sql,
)
from lifecycle.policy import Policy, quote_ident
from lifecycle.policy.raw import RawTable

# Distinct raw values and the zone's word n-grams hash in memory instead of spilling (as sales do).
WORK_MEM = "64MB"
# A finding's kind, by the kind of token that matched.
FINDING_KINDS = {
    "value": "raw_value",
    "in_text": "raw_value_in_text",
    "email": "raw_email",
    "phone": "raw_phone",
}

_CANDIDATES = sa.text("""
    CREATE TEMP TABLE guard_candidates (
        relation    text NOT NULL,
        column_name text NOT NULL,
        kind        text NOT NULL,
        len         int NOT NULL,
        h           bytea NOT NULL,
        mask        text NOT NULL,
        fresh       boolean NOT NULL DEFAULT true,  -- read tonight; false: kept from a past night
        -- a fresh digest also kept from a past night (mark_compared): it met the raw zone then
        compared    boolean NOT NULL DEFAULT false
    ) ON COMMIT DROP
""")


_CREATE_HITS = sa.text("""
    CREATE TEMP TABLE guard_hits (
        relation text, column_name text, kind text, h bytea, mask text, source text
    ) ON COMMIT DROP
""")


def create_candidates(conn: Connection) -> None:
    """The transaction's table of hashed tokens, one row per distinct token of a column, and of
    the hits find_hits finds, both dropped at commit; work_mem is raised for the transaction, so
    values and n-grams hash in memory."""
    conn.execute(sa.text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    conn.execute(_CANDIDATES)
    conn.execute(_CREATE_HITS)


def _distinct_values(relation_sql: str, column_sql: str) -> str:
    return (
        f"SELECT {column_sql}::text AS v, count(*) AS n FROM {relation_sql} "
        f"WHERE {column_sql} IS NOT NULL GROUP BY 1"
    )


# The reader's side: the column's distinct tokens hashed, sent in chunks of packed digests (32
# bytes each) and lengths (4 bytes each), so the job's side unpacks them in SQL and Python only
# passes a few blobs along, never a row per token.
_COLUMN_TOKENS = """
    WITH {tokens},
    c AS (
        SELECT t.kind, length(t.token) AS len, {hmac} AS h,
               row_number() OVER () AS rn
        FROM (SELECT DISTINCT kind, token FROM tokens WHERE {kinds}) t
    )
    SELECT kind, count(*) AS n,
           string_agg(h, ''::bytea ORDER BY rn) AS hs,
           string_agg(int4send(len), ''::bytea ORDER BY rn) AS ls
    FROM c GROUP BY kind, rn / {chunk}
"""
_UNPACK = sa.text(f"""
    INSERT INTO guard_candidates (relation, column_name, kind, len, h, mask)
    SELECT :relation, :column, :kind, u.len, u.h, {mask_sql("u.len - 2", "u.h")}
    FROM (SELECT substr(:hs, i * 32 + 1, 32) AS h,
                 ('x' || encode(substr(:ls, i * 4 + 1, 4), 'hex'))::bit(32)::int AS len
          FROM generate_series(0, :n - 1) AS i) u
""")
CHUNK = 50_000  # digests per blob: 1.6 MB


def _kinds(whole: bool) -> str:
    """SQL over the tokens CTE `t`/`tokens`: which kinds of token a column is compared as. A label
    column (`whole`) is compared as its whole values, its emails and its phones; the words and
    runs of words inside a value (`in_text`) are not compared."""
    return "kind <> 'in_text'" if whole else "true"


def add_column_candidates(
    reader: Connection,
    conn: Connection,
    key: GuardKey,
    relation_sql: str,
    column_sql: str,
    relation: str,
    column: str,
    whole: bool = False,
) -> int:
    """Hashes every distinct token of one text-like column on the `reader` connection and adds
    the digests to `conn`'s candidates; returns how many. Only digests and lengths cross.
    `whole`: the column's values are labels, compared whole, not word by word (_kinds)."""
    sql = _COLUMN_TOKENS.format(
        tokens=tokens_sql(_distinct_values(relation_sql, column_sql)),
        hmac=hmac_sql("t.token"),
        chunk=CHUNK,
        kinds=_kinds(whole),
    )
    chunks = reader.execute(
        sa.text(sql),
        {**SQL_PARAMS, **key.params()},
        execution_options={"yield_per": 1},  # one chunk in memory at a time; this statement only
    )
    added = 0
    for kind, n, hs, ls in chunks:
        conn.execute(
            _UNPACK,
            {"relation": relation, "column": column, "kind": kind, "n": n, "hs": hs, "ls": ls},
        )
        added += n
    return added


def column_hit_rows(
    reader: Connection,
    key: GuardKey,
    relation_sql: str,
    column_sql: str,
    hits: list[bytes],
    whole: bool = False,
) -> dict[str, int]:
    """Rows of one column holding one of the digests `hits`, per kind, read on the `reader`
    connection; a value that equals a raw value whole is counted as that alone, not again for the
    names or phones inside it. `whole`: as in add_column_candidates."""
    sql = f"""
        WITH {tokens_sql(_distinct_values(relation_sql, column_sql))},
        hit AS (
            SELECT DISTINCT t.vid, t.kind FROM tokens t
            WHERE {hmac_sql("t.token")} = ANY(:hits) AND {_kinds(whole)}
        )
        SELECT kind, sum(n)::bigint FROM (
            SELECT hit.kind, d.n, bool_or(hit.kind = 'value') OVER (PARTITION BY hit.vid) AS whole
            FROM hit JOIN d USING (vid)
        ) x
        WHERE kind = 'value' OR NOT whole
        GROUP BY kind
    """
    params = {"hits": list(hits), **SQL_PARAMS, **key.params()}
    return dict(reader.execute(sa.text(sql), params).all())


@dataclass
class TextTokens:
    """Digests of texts hashed in Python, kept by (location, item) so hits are counted exactly."""

    by_item: dict[tuple[str, int], set[tuple[str, bytes]]] = field(default_factory=dict)
    folded: bool = False  # some tokens are folded (`f:`): the raw side must make its folded forms

    def hit_rows(self, hits: set[bytes]) -> dict[tuple[str, str], int]:
        """Items per (location, kind) holding a hit; a whole-text hit is counted as that alone."""
        counts: dict[tuple[str, str], int] = {}
        for (location, _), digests in self.by_item.items():
            kinds = {kind for kind, digest in digests if digest in hits}
            for kind in {"value"} if "value" in kinds else kinds:
                counts[(location, kind)] = counts.get((location, kind), 0) + 1
        return counts

    def distinct_tokens(self) -> int:
        """How many different tokens the texts held."""
        return len({pair for pairs in self.by_item.values() for pair in pairs})


# One statement for all of a log's tokens (a row per statement cost 40 µs a token: 0.4 s for a
# night's 10,000): the digests packed in one blob as a column's are, locations and kinds as
# indexes into short arrays; the mask is computed in SQL as for a column's tokens.
_INSERT_CANDIDATES = sa.text(f"""
    INSERT INTO guard_candidates (relation, column_name, kind, len, h, mask)
    SELECT :relation, (CAST(:locations AS text[]))[t.location], (CAST(:kinds AS text[]))[t.kind],
           t.len, u.h, {mask_sql("t.len - 2", "u.h")}
    FROM unnest(CAST(:location_of AS int[]), CAST(:kind_of AS int[]), CAST(:lens AS int[]))
         WITH ORDINALITY AS t(location, kind, len, i)
    CROSS JOIN LATERAL (SELECT substr(CAST(:hs AS bytea), CAST((t.i - 1) * 32 + 1 AS int), 32)
                        AS h) u
""")


def add_text_candidates(
    conn: Connection,
    key: GuardKey,
    relation: str,
    texts: Iterable[tuple[str, int, str]],
    drop_numbers: bool = True,
    tokenize: Callable[[str], set[tuple[str, str]]] | None = None,
) -> TextTokens:
    """Hashes, in Python, the tokens of texts that never enter the database: (location, item, text).

    Bare numbers are dropped by default: run logs are full of counts, which are not personal.
    Runs of up to TEXT_GRAM_WORDS words are tokens (a long address inside a sentence is one).
    `tokenize` replaces the tokenizer (lifecycle.guard.provenance.log_tokens: explained spans cut
    out, digits folded); it drops what it will itself.
    """
    kept = TextTokens()
    rows: dict[tuple[str, str, bytes], int] = {}
    for location, item, text in texts:
        for kind, token in tokenize(text) if tokenize else tokens(text, TEXT_GRAM_WORDS):
            if not tokenize and drop_numbers and token.startswith("v:") and is_number(token[2:]):
                continue
            kept.folded = kept.folded or token.startswith("f:")
            digest = key.digest(token)
            kept.by_item.setdefault((location, item), set()).add((kind, digest))
            rows[(location, kind, digest)] = len(token)
    if rows:
        locations = sorted({location for location, _, _ in rows})
        kinds = sorted({kind for _, kind, _ in rows})
        at = {location: n for n, location in enumerate(locations, 1)}
        kind_at = {kind: n for n, kind in enumerate(kinds, 1)}
        conn.execute(
            _INSERT_CANDIDATES,
            {
                "relation": relation,
                "locations": locations,
                "kinds": kinds,
                "location_of": [at[location] for location, _, _ in rows],
                "kind_of": [kind_at[kind] for _, kind, _ in rows],
                "lens": list(rows.values()),
                "hs": b"".join(h for _, _, h in rows),
            },
        )
    return kept


def raw_sources(policy: Policy) -> dict[str, str]:
    """Bind parameters naming each personal raw column, in the order raw_fingerprints_sql reads
    them."""
    names = [
        f"{spec.table}.{c}" for spec in policy.raw.tables().values() for c in spec.personal_columns
    ]
    return {f"src_{i}": name for i, name in enumerate(names)}


# A personal value's folded form (lifecycle.guard.provenance.fold: every run of digits one `0`,
# `0` words in a row one `0`), made only for values holding a digit and something else: a log's bare
# numbers are not compared.
_FOLDED = f"regexp_replace(regexp_replace({{norm}}, '{FOLD_DIGITS}', '0', 'g'), '{FOLD_GROUPS}', '0', 'g')"
_FOLDABLE = "{norm} ~ '[0-9]' AND {norm} ~ '[^0-9 ]'"


def raw_fingerprints_sql(
    policy: Policy, new_only: bool = False, folded: bool = False
) -> str | None:
    """Rows (source, h): the digest of every distinct personal value in the raw zone; with
    `new_only`, of the values in rows written since transaction `:fp_new_xmin` (the low 32 bits of
    a snapshot's xmin: a row's xmin is at least that when written after it).

    Each raw table is read once, whatever its number of personal columns: the rows holding a
    value are unpivoted into (source, value) pairs, made distinct once (under the "C" collation, a
    byte comparison) and kept in a CTE that the whole-value, phone and folded branches read. A
    value is hashed only when its token is as long as some candidate token (guard_lengths): no
    digest can match otherwise. OFFSET 0 keeps PostgreSQL from inlining (and so recomputing) the
    normal form and the phone digits.

    One read per table, not one per column and branch: the per-column form read every row of the
    orders, cleared or not, once per column and branch (18 times for the reference schema). The
    orders are read through their partial indexes (`_rows_holding_values`). On the 1M bench seed
    the whole zone took 3.2 s against 3.8-4.1 s that way (4.8-4.9 s against 5.9-6.3 s with the
    folded forms); normalising and hashing the live values is the rest.
    """
    ctes, branches = [], []
    lengths = "IN (SELECT len FROM guard_lengths)"
    new = " AND CAST(CAST(t.xmin AS text) AS bigint) >= :fp_new_xmin" if new_only else ""
    source = 0
    for spec in policy.raw.tables().values():
        if not spec.personal_columns:
            continue
        cols = [quote_ident(column) for column in spec.personal_columns]
        pairs = []
        for col in cols:
            pairs.append(f'(:src_{source}, CAST(t.{col} AS text) COLLATE "C")')
            source += 1
        name = f"raw_{len(ctes)}"
        ctes.append(f"""{name} AS MATERIALIZED (
                SELECT DISTINCT x.source, x.v FROM {_rows_holding_values(spec, policy, cols, new)}
                CROSS JOIN LATERAL (VALUES {", ".join(pairs)}) AS x(source, v)
                WHERE x.v IS NOT NULL)""")
        branches.append(f"""
            SELECT n.source, {hmac_sql("'v:' || n.norm")} AS h
            FROM (SELECT s.source, {norm_sql("s.v")} AS norm FROM {name} s OFFSET 0) n
            WHERE length(n.norm) + 2 {lengths}""")
        branches.append(f"""
            SELECT p.source, {hmac_sql("'p:' || p.v")} FROM (
                SELECT c.source, unnest({phone_forms_sql("c.core", "c.intl")}) AS v FROM (
                    SELECT d.source, regexp_replace(d.digits, '^00?', '') AS core,
                           d.v LIKE '+%' OR d.digits LIKE '00%' AS intl
                    FROM (SELECT s.source, s.v, regexp_replace(s.v, '[^0-9]', '', 'g') AS digits
                          FROM {name} s WHERE s.v ~ :fp_raw_phone OFFSET 0) d
                    OFFSET 0) c) p
            WHERE length(p.v) >= :fp_min_phone AND length(p.v) + 2 {lengths}""")
        if folded:
            branches.append(_folded_branch(f"(SELECT source, v FROM {name} WHERE v ~ '[0-9]')"))
    if not branches:
        return None
    return "WITH " + ", ".join(ctes) + " " + " UNION ALL ".join(branches)


def _rows_holding_values(spec: RawTable, policy: Policy, cols: list[str], new: str) -> str:
    """A raw table's rows holding a personal value (with `new`, written since `:fp_new_xmin`), as
    a subquery `t` of its personal columns.

    The orders' are read as two halves: not cleared (`purged_at IS NULL`), and cleared yet holding
    a value. Together they are every row holding one, whatever the indexes; each half is what a
    partial index of the reference schema covers (migrations 0110 and 0140), so on a shop whose
    orders are mostly cleared the orders in flight are read, not every order ever placed."""
    held = " OR ".join(f"t.{col} IS NOT NULL" for col in cols)
    select = f"SELECT {', '.join(f't.{col}' for col in cols)} FROM {spec.sql} t"
    orders = policy.raw.orders
    if spec.table != orders.table or "purged_at" not in orders.columns:
        return f"({select} WHERE ({held}){new}) t"
    purged = f"t.{orders.col('purged_at')}"
    return f"""({select} WHERE {purged} IS NULL AND ({held}){new}
               UNION ALL
               {select} WHERE {purged} IS NOT NULL AND ({held}){new}) t"""


def _folded_branch(values: str) -> str:
    """Rows (source, h) of the folded forms (`f:`) of the (source, v) rows `values` selects."""
    return f"""
        SELECT f.source, {hmac_sql("'f:' || f.folded")} AS h FROM (
            SELECT n.source, {_FOLDED.format(norm="n.norm")} AS folded FROM (
                SELECT s.source, {norm_sql("s.v")} AS norm FROM {values} s OFFSET 0) n
            WHERE {_FOLDABLE.format(norm="n.norm")} OFFSET 0) f
        WHERE length(f.folded) + 2 IN (SELECT len FROM guard_lengths)"""


@dataclass(frozen=True)
class Hit:
    """A distinct token of an analytics column (or log location) whose digest a raw value has."""

    relation: str
    column: str
    kind: str
    h: bytes
    mask: str
    source: str


_ANY_CANDIDATE = sa.text("SELECT EXISTS (SELECT 1 FROM guard_candidates)")
_ANY_NEVER_COMPARED = sa.text(
    "SELECT EXISTS (SELECT 1 FROM guard_candidates WHERE fresh AND NOT compared)"
)
_LENGTHS = sa.text(
    "CREATE TEMP TABLE guard_lengths ON COMMIT DROP AS SELECT DISTINCT len FROM guard_candidates"
)
_HITS = sa.text(
    "SELECT relation, column_name, kind, h, mask, source FROM guard_hits ORDER BY 1, 2, 3, 5"
)


def find_hits(
    conn: Connection,
    key: GuardKey,
    policy: Policy,
    new_since: int | None = None,
    folded: bool = False,
) -> list[Hit]:
    """Joins the transaction's candidates against the raw zone's digests in one pass over the raw
    tables, keeping the hits in guard_hits for the exact counts that follow.

    With `new_since` (the snapshot xmin of the last pass, raw_values.py) and no candidate that
    never met the raw zone (every fresh one `compared`, see mark_compared), all meet only the raw
    values written since: each has been compared with every raw value older than that, without a
    hit, so only a new raw value can match it now. A candidate never compared (a token no clean
    pass has seen, the run log's new texts) has the raw zone hashed whole, and the others ride
    along in that one pass: they find the same hits, and the second pass over "rows written since",
    which after a rewrite that renews transaction ids (pg_repack) is every row, is saved. With
    `folded` (a run log's tokens, lifecycle.guard.provenance) the raw values' folded forms are
    made too."""
    if raw_fingerprints_sql(policy) is None or not conn.execute(_ANY_CANDIDATE).scalar():
        return []
    conn.execute(sa.text("ANALYZE guard_candidates"))
    conn.execute(_LENGTHS)
    raw, extra = raw_fingerprints_sql(policy, folded=folded), {}
    if new_since is not None and not conn.execute(_ANY_NEVER_COMPARED).scalar():
        raw = raw_fingerprints_sql(policy, new_only=True, folded=folded)
        extra = {"fp_new_xmin": new_since}
    conn.execute(
        sa.text(f"""
        INSERT INTO guard_hits
        SELECT DISTINCT c.relation, c.column_name, c.kind, c.h, c.mask, r.source
        FROM guard_candidates c JOIN ({raw}) r ON r.h = c.h
    """),
        {**SQL_PARAMS, **key.params(), **raw_sources(policy), **extra},
    )
    return [Hit(*row) for row in conn.execute(_HITS)]


_MARK_COMPARED = sa.text("""
    UPDATE guard_candidates c SET compared = true
    WHERE c.fresh AND c.h IN (SELECT z.h FROM lifecycle.guard_zone_digests z)
""")
_NEVER_COMPARED = sa.text(
    "SELECT count(DISTINCT h) FROM guard_candidates WHERE fresh AND NOT compared"
)


def mark_compared(conn: Connection) -> int:
    """Marks the fresh candidates whose digest is kept from a past clean pass (any relation's:
    a digest is the token's, wherever it was read) as already compared with the raw zone; returns
    how many distinct digests were never compared, which make find_hits hash the raw zone whole.

    Sound only with the kept digests' bargain (raw_values.py): every kept digest met every raw
    value older than the stored raw position without a hit (hits are never kept), with the same
    raw columns, tokenizer and key."""
    conn.execute(_MARK_COMPARED)
    return conn.execute(_NEVER_COMPARED).scalar()


_KEPT = sa.text("""
    INSERT INTO guard_candidates (relation, column_name, kind, len, h, mask, fresh)
    SELECT relation, column_name, kind, len, h, mask, false FROM lifecycle.guard_zone_digests
    WHERE relation = ANY(:relations)
""")
_FORGET = sa.text("""
    DELETE FROM lifecycle.guard_zone_digests
    WHERE relation = ANY(:read) OR (relation <> ALL(:zone) AND relation <> ALL(:logs))
""")
# Hits are never kept: a kept digest stands for "met the raw zone and matched nothing", which
# lets the same token, read again in a changed relation, meet only new raw values (mark_compared).
_KEEP = sa.text("""
    INSERT INTO lifecycle.guard_zone_digests (relation, column_name, kind, len, h, mask)
    SELECT c.relation, c.column_name, c.kind, c.len, c.h, c.mask FROM guard_candidates c
    WHERE c.fresh AND c.relation = ANY(:read)
      AND NOT EXISTS (SELECT 1 FROM guard_hits h WHERE h.h = c.h)
""")


def add_kept_candidates(conn: Connection, relations: list[str]) -> None:
    """The digests kept from the night each of `relations` was last read, as candidates."""
    if relations:
        conn.execute(_KEPT, {"relations": relations})


def keep_candidates(
    conn: Connection, read: list[str], zone: list[str], logs: tuple[str, ...] = ()
) -> None:
    """Keeps tonight's digests of the relations read (`read`, as findings name them) for the
    nights they do not change, except those that hit a raw value; drops those of relations no
    longer in the zone (a run log's, named in `logs`, are kept by keep_log_candidates)."""
    conn.execute(_FORGET, {"read": read, "zone": zone, "logs": list(logs)})
    conn.execute(_KEEP, {"read": read})


# A run log's digests, one row per distinct digest (its locations name runs, which change nightly).
_FORGET_LOG = sa.text("DELETE FROM lifecycle.guard_zone_digests WHERE relation = :log")
_KEEP_LOG = sa.text("""
    INSERT INTO lifecycle.guard_zone_digests (relation, column_name, kind, len, h, mask)
    SELECT DISTINCT ON (c.h) c.relation, '', c.kind, c.len, c.h, c.mask FROM guard_candidates c
    WHERE c.fresh AND c.relation = :log
      AND NOT EXISTS (SELECT 1 FROM guard_hits h WHERE h.h = c.h)
      AND NOT EXISTS (SELECT 1 FROM lifecycle.guard_zone_digests z
                      WHERE z.relation = :log AND z.h = c.h)
    ORDER BY c.h
""")


def keep_log_candidates(conn: Connection, log: str, replace: bool) -> None:
    """Keeps the digests of a run log's tokens compared tonight without a hit, beside those kept
    before (`replace`: instead of them, when the raw zone was compared on new terms), so the
    same Dagster and project texts met again tomorrow need only the raw values written since.
    On the same bargain as the zone's: they are digests of the log's text (its explained spans
    cut out, its digits folded), never of a raw value, and a digest that hit is never kept."""
    if replace:
        conn.execute(_FORGET_LOG, {"log": log})
    conn.execute(_KEEP_LOG, {"log": log})


@dataclass(frozen=True)
class Match:
    """Rows of one analytics column (or log location) holding personal raw values, by kind."""

    relation: str
    column: str
    kind: str
    rows: int
    sources: tuple[str, ...]
    samples: tuple[str, ...]

    def finding(self) -> Finding:
        """The match as a check's finding: where, how many rows, masked samples, which raw
        columns."""
        return Finding(
            self.relation,
            self.column,
            FINDING_KINDS[self.kind],
            self.rows,
            self.samples,
            detail="equals personal values still held in " + ", ".join(self.sources),
        )


def matches(
    hits: list[Hit], rows: dict[tuple[str, str, str], int], samples: int = SAMPLES
) -> list[Match]:
    """Hits grouped by (relation, column, kind) with their exact row counts; kinds counted 0 are
    dropped."""
    grouped: dict[tuple[str, str, str], list[Hit]] = {}
    for hit in hits:
        grouped.setdefault((hit.relation, hit.column, hit.kind), []).append(hit)
    return [
        Match(
            *where,
            rows[where],
            tuple(sorted({h.source for h in group})),
            tuple(sorted({h.mask for h in group}))[:samples],
        )
        for where, group in sorted(grouped.items())
        if rows.get(where)
    ]
