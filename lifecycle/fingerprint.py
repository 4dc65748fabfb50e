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
PHONE_CANDIDATE = r"(?<![0-9A-Za-z])[+(]?[0-9][0-9 ().-]{5,24}[0-9](?![0-9A-Za-z])"
PHONE_AT_END = "(?:" + "|".join(PHONE_SHAPES.values()) + ")$"
RAW_PHONE = r"^[+(]?[0-9][0-9 ().-]*[0-9]$"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

SQL_PARAMS = {
    "fp_non_word": NON_WORD, "fp_email": EMAIL,
    "fp_phone_candidate": PHONE_CANDIDATE, "fp_phone_at_end": PHONE_AT_END, "fp_cjk_run": CJK_RUN,
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


def phone_variants_sql(expr: str) -> str:
    """An array: the phone's digits without trunk/international prefix, and without a country code."""
    digits = f"regexp_replace({expr}, '[^0-9]', '', 'g')"
    core = f"regexp_replace({digits}, '^00?', '')"
    intl = f"({expr} LIKE '+%' OR {digits} LIKE '00%')"
    return (f"CASE WHEN {intl} THEN ARRAY[{core}, substr({core}, 2), substr({core}, 3), substr({core}, 4)] "
            f"ELSE ARRAY[{core}] END")


def tokens_sql(value: str, norm: str) -> str:
    """Rows (kind, token) of the text `value` whose normal form is `norm` (see `tokens`)."""
    return f"""
        SELECT 'value' AS kind, 'v:' || {norm} AS token WHERE {norm} <> ''
        UNION
        SELECT 'email', 'v:' || {norm_sql('m[1]')} FROM regexp_matches({value}, :fp_email, 'g') AS m
        UNION
        SELECT 'phone', 'p:' || pv.v
        FROM regexp_matches({value}, :fp_phone_candidate, 'g') AS m
        CROSS JOIN LATERAL (SELECT substring(m[1] FROM :fp_phone_at_end) AS phone) ph
        CROSS JOIN LATERAL unnest({phone_variants_sql('ph.phone')}) AS pv(v)
        WHERE ph.phone IS NOT NULL AND length(pv.v) >= :fp_min_phone
        UNION
        SELECT 'in_text', 'v:' || g.gram
        FROM (SELECT string_to_array({norm}, ' ') AS w WHERE {norm} <> '') s
        CROSS JOIN generate_series(1, cardinality(s.w)) AS i
        CROSS JOIN generate_series(1, {MAX_GRAM_WORDS}) AS k
        CROSS JOIN LATERAL (SELECT array_to_string(s.w[i:i + k - 1], ' ') AS gram) g
        WHERE i + k - 1 <= cardinality(s.w) AND g.gram <> {norm} AND g.gram ~ '[^0-9 ]'
        UNION
        SELECT 'in_text', 'v:' || substr(r.run, i, k)
        FROM (SELECT m[1] AS run FROM regexp_matches({norm}, :fp_cjk_run, 'g') AS m) r
        CROSS JOIN generate_series(1, length(r.run)) AS i
        CROSS JOIN unnest(ARRAY{list(CJK_GRAMS)}) AS k
        WHERE i + k - 1 <= length(r.run) AND substr(r.run, i, k) <> {norm}"""


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


# ---------------------------------------------------------------- candidates and matches

_CANDIDATES = sa.text("""
    CREATE TEMP TABLE guard_candidates (
        relation    text NOT NULL,
        column_name text NOT NULL,
        kind        text NOT NULL,
        vid         bigint NOT NULL,
        n_rows      bigint NOT NULL,
        h           bytea NOT NULL,
        mask        text NOT NULL
    ) ON COMMIT DROP
""")


def create_candidates(conn: Connection) -> None:
    """The session's table of hashed analytics tokens; dropped when the transaction ends."""
    conn.execute(_CANDIDATES)


def add_column_candidates(conn: Connection, key: GuardKey, relation_sql: str, column_sql: str,
                          relation: str, column: str) -> int:
    """Hashes the tokens of every distinct value of one text-like column; returns rows added."""
    value = "d.v"
    sql = f"""
        INSERT INTO guard_candidates
        SELECT :relation, :column, t.kind, d.vid, d.n, x.h, {mask_sql('t.token', 'x.h')}
        FROM (SELECT v, n, row_number() OVER () AS vid
              FROM (SELECT {column_sql}::text AS v, count(*) AS n FROM {relation_sql}
                    WHERE {column_sql} IS NOT NULL GROUP BY 1) g) d
        CROSS JOIN LATERAL (SELECT {norm_sql(value)} AS norm) n
        CROSS JOIN LATERAL ({tokens_sql(value, 'n.norm')}) t
        CROSS JOIN LATERAL (SELECT {hmac_sql('t.token')} AS h) x
    """
    params = {"relation": relation, "column": column, **SQL_PARAMS, **key.params()}
    return conn.execute(sa.text(sql), params).rowcount


def add_text_candidates(conn: Connection, key: GuardKey, relation: str,
                        texts: Iterable[tuple[str, int, str]], drop_numbers: bool = True) -> int:
    """Hashes, in Python, the tokens of texts that never enter the database (location, item id, text).

    Bare numbers are dropped by default: run logs are full of counts, which are not personal.
    """
    rows = {}
    for location, item, text in texts:
        for kind, token in tokens(text):
            if drop_numbers and token.startswith("v:") and not _NOT_ONLY_DIGITS.search(token[2:]):
                continue
            digest = key.digest(token)
            rows[(location, kind, item, digest)] = mask(token, digest)
    if rows:
        conn.execute(sa.text(
            "INSERT INTO guard_candidates VALUES (:relation, :column, :kind, :vid, 1, :h, :mask)"),
            [{"relation": relation, "column": location, "kind": kind, "vid": item, "h": digest, "mask": m}
             for (location, kind, item, digest), m in rows.items()])
    return len(rows)


def raw_sources(policy: Policy) -> dict[str, str]:
    """Bind parameters naming each personal raw column, in the order raw_fingerprints_sql reads them."""
    names = [f"{spec.table}.{c}" for spec in policy.raw.tables().values() for c in spec.personal_columns]
    return {f"src_{i}": name for i, name in enumerate(names)}


def raw_fingerprints_sql(policy: Policy) -> str | None:
    """Rows (source, h): the digest of every distinct personal value in the raw zone, read once.

    Flat expressions over DISTINCT values, no per-row subquery: the cost is a hash per value.
    Phone-like values get a second branch with their digit forms; OFFSET 0 keeps PostgreSQL from
    inlining (and so recomputing) the digits in every array element.
    """
    branches = []
    for spec in policy.raw.tables().values():
        for column in spec.personal_columns:
            col, src = quote_ident(column), f":src_{len(branches) // 2}"
            distinct = f"SELECT DISTINCT {col}::text AS v FROM {spec.sql} WHERE {col} IS NOT NULL"
            branches.append(f"SELECT {src} AS source, {hmac_sql(chr(39) + 'v:' + chr(39) + ' || ' + norm_sql('s.v'))} AS h "
                            f"FROM ({distinct}) s")
            branches.append(f"""
                SELECT {src}, {hmac_sql("'p:' || p.v")} FROM (
                    SELECT unnest({phone_variants_sql('s.v')}) AS v
                    FROM ({distinct} AND {col}::text ~ :fp_raw_phone) s OFFSET 0) p
                WHERE length(p.v) >= :fp_min_phone""")
    return " UNION ALL ".join(branches) if branches else None


@dataclass(frozen=True)
class Match:
    """Values of one analytics column (or log location) that equal personal raw values."""

    relation: str
    column: str
    kind: str
    rows: int
    sources: tuple[str, ...]
    samples: tuple[str, ...]


_SUMMARY = sa.text("""
    WITH m AS (
        SELECT * FROM guard_matches g
        WHERE g.kind = 'value' OR NOT EXISTS (
            SELECT 1 FROM guard_matches w WHERE w.kind = 'value' AND w.relation = g.relation
              AND w.column_name = g.column_name AND w.vid = g.vid)
    )
    SELECT c.relation, c.column_name, c.kind, c.rows, s.sources, s.samples
    FROM (SELECT relation, column_name, kind, sum(n_rows)::bigint AS rows
          FROM (SELECT DISTINCT relation, column_name, kind, vid, n_rows FROM m) v
          GROUP BY 1, 2, 3) c
    JOIN (SELECT relation, column_name, kind, array_agg(DISTINCT source) AS sources,
                 (array_agg(DISTINCT mask))[1:3] AS samples
          FROM m GROUP BY 1, 2, 3) s USING (relation, column_name, kind)
    ORDER BY 1, 2, 3
""")


def match_raw(conn: Connection, key: GuardKey, policy: Policy) -> list[Match]:
    """Joins the session's candidates against the raw zone's digests in one pass over the raw tables."""
    if not conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM guard_candidates)")).scalar():
        return []
    raw = raw_fingerprints_sql(policy)
    if raw is None:
        return []
    conn.execute(sa.text("ANALYZE guard_candidates"))
    conn.execute(sa.text(f"""
        CREATE TEMP TABLE guard_matches ON COMMIT DROP AS
        SELECT DISTINCT c.relation, c.column_name, c.kind, c.vid, c.n_rows, c.mask, r.source
        FROM guard_candidates c JOIN ({raw}) r ON r.h = c.h
    """), {**SQL_PARAMS, **key.params(), **raw_sources(policy)})
    return [Match(r.relation, r.column_name, r.kind, r.rows, tuple(r.sources), tuple(r.samples))
            for r in conn.execute(_SUMMARY)]
