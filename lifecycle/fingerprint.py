"""Keyed fingerprints: does any analytics value, or a name, phone or email inside one, equal a
personal value still held in the raw zone?

Values are compared as HMAC-SHA256 digests of their normalised form (ASCII case folded, every run
of non-letters/digits one space; phones as digits, with and without an international prefix),
never as copies. The key lives outside the database (LIFECYCLE_GUARD_SECRET or a 0600 key file),
so the digests in a temp table or a server log cannot be brute-forced back into phone numbers.
HMAC is built from sha256() (PostgreSQL 11+) because pgcrypto is not available on every server
(the embedded one lacks it); `tests/db/test_guard_fingerprints.py` proves it equals Python's hmac.

The tokenizer exists twice, as SQL (for analytics values, set-based) and as Python (for Dagster's
event log, whose text never enters the database); both follow the same regexes, and a test holds
them to the same output.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.patterns import EMAIL, PHONE_SHAPES
from lifecycle.policy import Policy, quote_ident
from lifecycle.settings import Settings

MIN_SECRET_CHARS = 16
MIN_PHONE_DIGITS = 8
MAX_GRAM_WORDS = 4
CJK_GRAMS = (2, 3, 4)

# Letters and digits of the scripts a shop's customers write in; anything else separates words.
WORD_CHARS = ("0-9a-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F\u0370-\u03FF\u0400-\u04FF"
              "\u3040-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7AF")
NON_WORD = f"[^{WORD_CHARS}]+"
CJK_RUN = "[\u3400-\u4DBF\u4E00-\u9FFF]{2,}"
CJK_ANY = "[\u3400-\u4DBF\u4E00-\u9FFF]"
PHONE_CANDIDATE = r"(?<![0-9A-Za-z])[+(]?[0-9][0-9 ().-]{5,24}[0-9](?![0-9A-Za-z])"
PHONE_AT_END = "(?:" + "|".join(PHONE_SHAPES.values()) + ")$"
RAW_PHONE = r"^[+(]?[0-9][0-9 ().-]*[0-9]$"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

SQL_PARAMS = {
    "fp_non_word": NON_WORD, "fp_email": EMAIL,
    "fp_phone_candidate": PHONE_CANDIDATE, "fp_phone_at_end": PHONE_AT_END, "fp_cjk_run": CJK_RUN, "fp_cjk_any": CJK_ANY,
    "fp_raw_phone": RAW_PHONE, "fp_min_phone": MIN_PHONE_DIGITS,
}


class GuardKeyError(RuntimeError):
    """The HMAC key cannot be used; the message says what to set or fix."""


# ---------------------------------------------------------------- the key

@dataclass(frozen=True)
class GuardKey:
    """The HMAC key, with the padded forms SQL needs; its repr never shows the key."""

    key: bytes = field(repr=False)

    def digest(self, token: str) -> bytes:
        return hmac.new(self.key, token.encode("utf-8"), hashlib.sha256).digest()

    def params(self) -> dict[str, bytes]:
        """Inner and outer pads (RFC 2104) bound into the SQL HMAC."""
        block = hashlib.sha256(self.key).digest() if len(self.key) > 64 else self.key
        block = block.ljust(64, b"\0")
        return {"hmac_ipad": bytes(b ^ 0x36 for b in block), "hmac_opad": bytes(b ^ 0x5C for b in block)}


def load_key(settings: Settings) -> GuardKey:
    """LIFECYCLE_GUARD_SECRET, else the key file under LIFECYCLE_HOME, created 0600 on first use."""
    if settings.guard_secret:
        if len(settings.guard_secret) < MIN_SECRET_CHARS:
            raise GuardKeyError(
                f"LIFECYCLE_GUARD_SECRET is shorter than {MIN_SECRET_CHARS} characters; set a long random "
                "value, e.g. the output of `python -c 'import secrets; print(secrets.token_hex(32))'`")
        return GuardKey(settings.guard_secret.encode("utf-8"))
    path = settings.guard_key_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".guard.key.")
        try:
            os.write(fd, secrets.token_hex(32).encode() + b"\n")
            os.close(fd)
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, path)  # atomic: a process that lost the race reads the winner's key
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise GuardKeyError(f"{path}: the guard key is readable by others (mode {mode:o}); run `chmod 600 {path}`")
    try:
        return GuardKey(bytes.fromhex(path.read_text(encoding="ascii").strip()))
    except ValueError:
        raise GuardKeyError(f"{path}: not a hex key; delete it to have a new one made") from None


# ---------------------------------------------------------------- tokens, in SQL

def hmac_sql(expr: str) -> str:
    """HMAC-SHA256 of the text `expr` under the bound pads (:hmac_ipad, :hmac_opad)."""
    return f"sha256(:hmac_opad || sha256(:hmac_ipad || convert_to({expr}, 'UTF8')))"


def norm_sql(expr: str) -> str:
    # lower() under the "C" collation folds ASCII only, on every server, as `normalise` does;
    # translate() would do the same at a tenth of the speed.
    return f"btrim(regexp_replace(lower({expr} COLLATE \"C\"), :fp_non_word, ' ', 'g'), ' ')"


def phone_forms_sql(core: str, intl: str) -> str:
    """An array: `core` (digits without a leading 00 or trunk 0) and, for a number written
    internationally (`intl`), `core` without a 1-3 digit country code."""
    return (f"CASE WHEN {intl} THEN ARRAY[{core}, substr({core}, 2), substr({core}, 3), substr({core}, 4)] "
            f"ELSE ARRAY[{core}] END")


def phone_variants_sql(expr: str) -> str:
    """`phone_forms_sql` of the phone text `expr`, computed inline (for a few values at a time)."""
    digits = f"regexp_replace({expr}, '[^0-9]', '', 'g')"
    return phone_forms_sql(f"regexp_replace({digits}, '^00?', '')", f"({expr} LIKE '+%' OR {digits} LIKE '00%')")


def tokens_sql(source: str) -> str:
    """CTEs over `source`, a query of distinct text values `v` with their row counts `n`:
    `d` (vid, n, v, norm) and `tokens` (vid, kind, token), exactly what `tokens` makes in Python.

    Set-based: words are unnested once and their 2-4-grams read with lead(), so a table of free
    text costs a sort and a scan, not a subquery per row.
    """
    grams = ", ".join(
        " || ' ' || ".join(["word"] + [f"lead(word, {j}) OVER win" for j in range(1, k)]) + f" AS g{k}"
        for k in range(1, MAX_GRAM_WORDS + 1))
    unpivot = ", ".join(f"({k}, g.g{k})" for k in range(1, MAX_GRAM_WORDS + 1))
    return f"""
        d AS MATERIALIZED (
            SELECT row_number() OVER () AS vid, s.n, s.v, {norm_sql('s.v')} AS norm FROM ({source}) s
        ), w AS (
            SELECT d.vid, x.word, x.ord, cardinality(a.words) AS words
            FROM d CROSS JOIN LATERAL (SELECT string_to_array(d.norm, ' ') AS words) a
            CROSS JOIN LATERAL unnest(a.words) WITH ORDINALITY AS x(word, ord)
            WHERE d.norm <> ''
        ), grams AS (
            SELECT vid, ord, words, {grams} FROM w WINDOW win AS (PARTITION BY vid ORDER BY ord)
        ), tokens AS (
            SELECT vid, 'value' AS kind, 'v:' || norm AS token FROM d WHERE norm <> ''
            UNION ALL
            SELECT g.vid, 'in_text', 'v:' || t.gram
            FROM grams g CROSS JOIN LATERAL (VALUES {unpivot}) AS t(k, gram)
            WHERE t.gram IS NOT NULL AND NOT (g.ord = 1 AND t.k = g.words) AND t.gram ~ '[^0-9 ]'
            UNION ALL
            SELECT d.vid, 'email', 'v:' || {norm_sql('m[1]')}
            FROM d CROSS JOIN LATERAL regexp_matches(d.v, :fp_email, 'g') AS m
            WHERE d.v LIKE '%@%'
            UNION ALL
            SELECT d.vid, 'phone', 'p:' || pv.v
            FROM d CROSS JOIN LATERAL regexp_matches(d.v, :fp_phone_candidate, 'g') AS m
            CROSS JOIN LATERAL (SELECT substring(m[1] FROM :fp_phone_at_end) AS phone) ph
            CROSS JOIN LATERAL unnest({phone_variants_sql('ph.phone')}) AS pv(v)
            WHERE d.v ~ '[0-9]' AND ph.phone IS NOT NULL AND length(pv.v) >= :fp_min_phone
            UNION ALL
            SELECT d.vid, 'in_text', 'v:' || substr(r.run, i, k)
            FROM d CROSS JOIN LATERAL (SELECT m[1] AS run FROM regexp_matches(d.norm, :fp_cjk_run, 'g') AS m) r
            CROSS JOIN generate_series(1, length(r.run)) AS i
            CROSS JOIN unnest(ARRAY{list(CJK_GRAMS)}) AS k
            WHERE d.norm ~ :fp_cjk_any AND i + k - 1 <= length(r.run) AND substr(r.run, i, k) <> d.norm
        )"""


# ---------------------------------------------------------------- tokens, in Python

_NON_WORD = re.compile(NON_WORD)
_EMAIL = re.compile(EMAIL)
_PHONE_CANDIDATE = re.compile(PHONE_CANDIDATE)
_PHONE_AT_END = re.compile(PHONE_AT_END)
_CJK_RUN = re.compile(CJK_RUN)
_NOT_ONLY_DIGITS = re.compile("[^0-9 ]")
_FOLD = str.maketrans(UPPER, UPPER.lower())


def normalise(text: str) -> str:
    """ASCII case folded; every run of characters that are not letters or digits becomes one space."""
    return _NON_WORD.sub(" ", text.translate(_FOLD)).strip(" ")


def phone_variants(phone: str) -> set[str]:
    """The phone's digits without trunk or international prefix, and without a 1-3 digit country code."""
    digits = re.sub("[^0-9]", "", phone)
    intl = phone.startswith("+") or digits.startswith("00")
    core = re.sub("^00?", "", digits)
    forms = [core] + ([core[1:], core[2:], core[3:]] if intl else [])
    return {f for f in forms if len(f) >= MIN_PHONE_DIGITS}


def tokens(text: str) -> set[tuple[str, str]]:
    """(kind, token) pairs of a text: its whole normal form ('value'), emails and phones in it, and
    every run of 1-4 words or 2-4 CJK characters that is not the whole text ('in_text')."""
    out: set[tuple[str, str]] = set()
    norm = normalise(text)
    if norm:
        out.add(("value", "v:" + norm))
    for match in _EMAIL.finditer(text):
        out.add(("email", "v:" + normalise(match.group(0))))
    for match in _PHONE_CANDIDATE.finditer(text):
        phone = _PHONE_AT_END.search(match.group(0))
        if phone:
            out.update(("phone", "p:" + v) for v in phone_variants(phone.group(0)))
    words = norm.split(" ") if norm else []
    for i in range(len(words)):
        for k in range(1, MAX_GRAM_WORDS + 1):
            gram = " ".join(words[i:i + k])
            if i + k <= len(words) and gram != norm and _NOT_ONLY_DIGITS.search(gram):
                out.add(("in_text", "v:" + gram))
    for run in (m.group(0) for m in _CJK_RUN.finditer(norm)):
        for i in range(len(run)):
            for k in CJK_GRAMS:
                if i + k <= len(run) and run[i:i + k] != norm:
                    out.add(("in_text", "v:" + run[i:i + k]))
    return out


def mask(token: str, digest: bytes) -> str:
    """How a matched token is shown: its length and a keyed-hash prefix, nothing of the value."""
    return f"{len(token) - 2} chars #{digest.hex()[:6]}"


def mask_sql(token: str, digest: str) -> str:
    return f"(length({token}) - 2) || ' chars #' || left(encode({digest}, 'hex'), 6)"


# ---------------------------------------------------------------- candidates, hits, counts

_CANDIDATES = sa.text("""
    CREATE TEMP TABLE guard_candidates (
        relation    text NOT NULL,
        column_name text NOT NULL,
        kind        text NOT NULL,
        len         int NOT NULL,
        h           bytea NOT NULL,
        mask        text NOT NULL
    ) ON COMMIT DROP
""")


def create_candidates(conn: Connection) -> None:
    """The session's table of hashed tokens, one row per distinct token of a column; dropped at commit."""
    conn.execute(_CANDIDATES)


def _distinct_values(relation_sql: str, column_sql: str) -> str:
    return (f"SELECT {column_sql}::text AS v, count(*) AS n FROM {relation_sql} "
            f"WHERE {column_sql} IS NOT NULL GROUP BY 1")


def add_column_candidates(conn: Connection, key: GuardKey, relation_sql: str, column_sql: str,
                          relation: str, column: str) -> int:
    """Hashes every distinct token of one text-like column; returns how many."""
    sql = f"""
        WITH {tokens_sql(_distinct_values(relation_sql, column_sql))}
        INSERT INTO guard_candidates
        SELECT :relation, :column, t.kind, length(t.token), x.h, {mask_sql('t.token', 'x.h')}
        FROM (SELECT DISTINCT kind, token FROM tokens) t
        CROSS JOIN LATERAL (SELECT {hmac_sql('t.token')} AS h) x
    """
    params = {"relation": relation, "column": column, **SQL_PARAMS, **key.params()}
    return conn.execute(sa.text(sql), params).rowcount


def column_hit_rows(conn: Connection, key: GuardKey, relation_sql: str, column_sql: str,
                    relation: str, column: str) -> dict[str, int]:
    """Rows of one column holding a hit, per kind; a value that equals a raw value whole is counted
    as that alone, not again for the names or phones inside it."""
    sql = f"""
        WITH {tokens_sql(_distinct_values(relation_sql, column_sql))},
        hit AS (
            SELECT DISTINCT t.vid, t.kind FROM tokens t
            WHERE {hmac_sql('t.token')} IN (SELECT h FROM guard_hits WHERE relation = :relation AND column_name = :column)
        )
        SELECT kind, sum(n)::bigint FROM (
            SELECT hit.kind, d.n, bool_or(hit.kind = 'value') OVER (PARTITION BY hit.vid) AS whole
            FROM hit JOIN d USING (vid)
        ) x
        WHERE kind = 'value' OR NOT whole
        GROUP BY kind
    """
    params = {"relation": relation, "column": column, **SQL_PARAMS, **key.params()}
    return dict(conn.execute(sa.text(sql), params).all())


@dataclass
class TextTokens:
    """Digests of texts hashed in Python, kept by (location, item) so hits can be counted exactly."""

    by_item: dict[tuple[str, int], set[tuple[str, bytes]]] = field(default_factory=dict)

    def hit_rows(self, hits: set[bytes]) -> dict[tuple[str, str], int]:
        """Items per (location, kind) holding a hit; a whole-text hit is counted as that alone."""
        counts: dict[tuple[str, str], int] = {}
        for (location, _), digests in self.by_item.items():
            kinds = {kind for kind, digest in digests if digest in hits}
            for kind in ({"value"} if "value" in kinds else kinds):
                counts[(location, kind)] = counts.get((location, kind), 0) + 1
        return counts


def add_text_candidates(conn: Connection, key: GuardKey, relation: str,
                        texts: Iterable[tuple[str, int, str]], drop_numbers: bool = True) -> TextTokens:
    """Hashes, in Python, the tokens of texts that never enter the database (location, item id, text).

    Bare numbers are dropped by default: run logs are full of counts, which are not personal.
    """
    kept = TextTokens()
    rows: dict[tuple[str, str, bytes], tuple[int, str]] = {}
    for location, item, text in texts:
        for kind, token in tokens(text):
            if drop_numbers and token.startswith("v:") and not _NOT_ONLY_DIGITS.search(token[2:]):
                continue
            digest = key.digest(token)
            kept.by_item.setdefault((location, item), set()).add((kind, digest))
            rows[(location, kind, digest)] = (len(token), mask(token, digest))
    if rows:
        conn.execute(sa.text("INSERT INTO guard_candidates VALUES (:relation, :column, :kind, :len, :h, :mask)"),
                     [{"relation": relation, "column": location, "kind": kind, "len": n, "h": digest, "mask": m}
                      for (location, kind, digest), (n, m) in rows.items()])
    return kept


def raw_sources(policy: Policy) -> dict[str, str]:
    """Bind parameters naming each personal raw column, in the order raw_fingerprints_sql reads them."""
    names = [f"{spec.table}.{c}" for spec in policy.raw.tables().values() for c in spec.personal_columns]
    return {f"src_{i}": name for i, name in enumerate(names)}


def raw_fingerprints_sql(policy: Policy) -> str | None:
    """Rows (source, h): the digest of every distinct personal value in the raw zone, read once.

    Flat expressions over DISTINCT values, no per-row subquery. A value is hashed only when its
    token is as long as some candidate token (guard_lengths): no digest can match otherwise, and
    a zone of short codes then costs a normalisation per raw value, not two SHA-256. OFFSET 0 keeps
    PostgreSQL from inlining (and so recomputing) the normal form and the phone digits.
    """
    branches = []
    lengths = "IN (SELECT len FROM guard_lengths)"
    for spec in policy.raw.tables().values():
        for column in spec.personal_columns:
            col, src = quote_ident(column), f":src_{len(branches) // 2}"
            distinct = f"SELECT DISTINCT {col}::text AS v FROM {spec.sql} WHERE {col} IS NOT NULL"
            branches.append(f"""
                SELECT {src} AS source, {hmac_sql("'v:' || n.norm")} AS h
                FROM (SELECT {norm_sql('s.v')} AS norm FROM ({distinct}) s OFFSET 0) n
                WHERE length(n.norm) + 2 {lengths}""")
            branches.append(f"""
                SELECT {src}, {hmac_sql("'p:' || p.v")} FROM (
                    SELECT unnest({phone_forms_sql('c.core', 'c.intl')}) AS v FROM (
                        SELECT regexp_replace(d.digits, '^00?', '') AS core,
                               d.v LIKE '+%' OR d.digits LIKE '00%' AS intl
                        FROM (SELECT s.v, regexp_replace(s.v, '[^0-9]', '', 'g') AS digits
                              FROM ({distinct} AND {col}::text ~ :fp_raw_phone) s OFFSET 0) d OFFSET 0) c) p
                WHERE length(p.v) >= :fp_min_phone AND length(p.v) + 2 {lengths}""")
    return " UNION ALL ".join(branches) if branches else None


@dataclass(frozen=True)
class Hit:
    """A distinct token of an analytics column (or log location) whose digest a raw value shares."""

    relation: str
    column: str
    kind: str
    h: bytes
    mask: str
    source: str


def find_hits(conn: Connection, key: GuardKey, policy: Policy) -> list[Hit]:
    """Joins the session's candidates against the raw zone's digests in one pass over the raw tables,
    keeping the hits in guard_hits for the exact counts that follow."""
    raw = raw_fingerprints_sql(policy)
    if raw is None or not conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM guard_candidates)")).scalar():
        return []
    conn.execute(sa.text("ANALYZE guard_candidates"))
    conn.execute(sa.text("CREATE TEMP TABLE guard_lengths ON COMMIT DROP AS SELECT DISTINCT len FROM guard_candidates"))
    conn.execute(sa.text(f"""
        CREATE TEMP TABLE guard_hits ON COMMIT DROP AS
        SELECT DISTINCT c.relation, c.column_name, c.kind, c.h, c.mask, r.source
        FROM guard_candidates c JOIN ({raw}) r ON r.h = c.h
    """), {**SQL_PARAMS, **key.params(), **raw_sources(policy)})
    rows = conn.execute(sa.text("SELECT relation, column_name, kind, h, mask, source FROM guard_hits ORDER BY 1, 2, 3, 5"))
    return [Hit(*row) for row in rows]


@dataclass(frozen=True)
class Match:
    """Rows of one analytics column (or log location) holding personal raw values, by kind."""

    relation: str
    column: str
    kind: str
    rows: int
    sources: tuple[str, ...]
    samples: tuple[str, ...]


def matches(hits: list[Hit], rows: dict[tuple[str, str, str], int], samples: int = 3) -> list[Match]:
    """Hits grouped by (relation, column, kind) with their exact row counts; kinds counted 0 are dropped."""
    grouped: dict[tuple[str, str, str], list[Hit]] = {}
    for hit in hits:
        grouped.setdefault((hit.relation, hit.column, hit.kind), []).append(hit)
    return [Match(*where, rows[where], tuple(sorted({h.source for h in group})),
                  tuple(sorted({h.mask for h in group}))[:samples])
            for where, group in sorted(grouped.items()) if rows.get(where)]
