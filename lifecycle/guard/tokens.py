"""The tokens a text is compared by: its normal form, the runs of words inside it, emails, phones.

Normal form: case folded (ASCII, and the Latin, Greek and Cyrillic capitals of WORD_CHARS, by one
table both sides share), every run of non-letters/digits one space; phones as digits, with and
without an international prefix. The tokenizer exists twice, as SQL (for analytics values,
set-based) and as Python (for Dagster's event log, whose text never enters the database); both
follow the same regexes, and `tests/db/test_guard_fingerprints.py` holds them to the same output.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from lifecycle.guard.patterns import EMAIL, PHONE_SHAPES

MIN_PHONE_DIGITS = 8
MAX_GRAM_WORDS = 4
# Texts hashed in Python (the run log's, a report's lines) are few and short, so their runs of
# words go up to 12: a raw value of five words or more written inside a sentence ("shipped to 12
# Garden Road, Apt 3 today") is then a token of the text. Analytics values keep 4: they are
# tokenized in SQL at a cost that follows the zone, and the pattern check finds addresses there.
TEXT_GRAM_WORDS = 12
CJK_GRAMS = (2, 3, 4)

# Letters and digits of the scripts a shop's customers write in; anything else separates words.
WORD_CHARS = (
    "0-9a-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u0370-\u03ff\u0400-\u04ff"
    "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
)
NON_WORD = f"[^{WORD_CHARS}]+"
CJK_RUN = "[\u3400-\u4dbf\u4e00-\u9fff]{2,}"
CJK_ANY = "[\u3400-\u4dbf\u4e00-\u9fff]"
PHONE_CANDIDATE = r"(?<![0-9A-Za-z])[+(]?[0-9][0-9 ().-]{5,24}[0-9](?![0-9A-Za-z])"
PHONE_AT_END = "(?:" + "|".join(PHONE_SHAPES.values()) + ")$"
RAW_PHONE = r"^[+(]?[0-9][0-9 ().-]*[0-9]$"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _capitals() -> tuple[str, str]:
    """The capitals of WORD_CHARS beyond ASCII, and their small letters, pair by pair: those whose
    lower case is one letter of WORD_CHARS (Python's; U+0130, whose lower case is two, is left).

    ASCII alone was folded before, so a name written in capitals (`JOSÉ MÜLLER`, as many
    catalogues write descriptions) kept É and Ü and met neither `José Müller` nor `JOSÉ
    MÜLLER`'s raw value written otherwise. An explicit table, not lower() under a locale: every
    server and Python fold alike with it."""
    word = re.compile(f"[{WORD_CHARS}]")
    pairs = [
        (c, c.lower())
        for c in map(chr, range(0x80, 0x500))
        if word.match(c) and len(c.lower()) == 1 and c.lower() != c and word.match(c.lower())
    ]
    return "".join(c for c, _ in pairs), "".join(low for _, low in pairs)


CAPITALS, SMALL = _capitals()

# Bound into every statement that tokenizes or normalises in SQL.
SQL_PARAMS = {
    "fp_non_word": NON_WORD,
    "fp_email": EMAIL,
    "fp_phone_candidate": PHONE_CANDIDATE,
    "fp_phone_at_end": PHONE_AT_END,
    "fp_cjk_run": CJK_RUN,
    "fp_cjk_any": CJK_ANY,
    "fp_raw_phone": RAW_PHONE,
    "fp_min_phone": MIN_PHONE_DIGITS,
    "fp_capitals": CAPITALS,
    "fp_small": SMALL,
    "fp_any_capital": f"[{CAPITALS}]",
}


# ---------------------------------------------------------------- in SQL


def norm_sql(expr: str) -> str:
    """`normalise` of the text `expr`, in SQL."""
    # lower() under the "C" collation folds ASCII only, on every server; the other capitals go
    # through translate() with the shared table, only for a text that holds one: translate() looks
    # each character up in its list of 357 capitals, about 40 µs a value against 0.6 µs for
    # lower() (docs/guard.md), and most texts (codes, CJK, names in small letters) hold none.
    ascii = f'lower({expr} COLLATE "C")'
    folded = (
        f"CASE WHEN {expr} ~ :fp_any_capital THEN translate({ascii}, :fp_capitals, :fp_small) "
        f"ELSE {ascii} END"
    )
    return f"btrim(regexp_replace({folded}, :fp_non_word, ' ', 'g'), ' ')"


def phone_forms_sql(core: str, intl: str) -> str:
    """An array: `core` (digits without a leading 00 or trunk 0) and, for a number written
    internationally (`intl`), `core` without a 1-3 digit country code."""
    return (
        f"CASE WHEN {intl} "
        f"THEN ARRAY[{core}, substr({core}, 2), substr({core}, 3), substr({core}, 4)] "
        f"ELSE ARRAY[{core}] END"
    )


def phone_variants_sql(expr: str) -> str:
    """`phone_forms_sql` of the phone text `expr`, computed inline (for a few values at a time)."""
    digits = f"regexp_replace({expr}, '[^0-9]', '', 'g')"
    return phone_forms_sql(
        f"regexp_replace({digits}, '^00?', '')", f"({expr} LIKE '+%' OR {digits} LIKE '00%')"
    )


def tokens_sql(source: str) -> str:
    """CTEs over `source`, a query of distinct text values `v` with their row counts `n`:
    `d` (vid, n, v, norm) and `tokens` (vid, kind, token), exactly what `tokens` makes in Python.

    Set-based: words are unnested once and their 2-4-grams read with lead(), so a table of free
    text costs a sort and a scan, not a subquery per row.
    """
    sizes = range(1, MAX_GRAM_WORDS + 1)
    leads = {k: [f"lead(word, {j}) OVER win" for j in range(1, k)] for k in sizes}
    grams = ", ".join(" || ' ' || ".join(["word", *leads[k]]) + f" AS g{k}" for k in sizes)
    unpivot = ", ".join(f"({k}, g.g{k})" for k in sizes)
    return f"""
        d AS MATERIALIZED (
            SELECT row_number() OVER () AS vid, s.n, s.v, {norm_sql("s.v")} AS norm
            FROM ({source}) s
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
            SELECT d.vid, 'email', 'v:' || {norm_sql("m[1]")}
            FROM d CROSS JOIN LATERAL regexp_matches(d.v, :fp_email, 'g') AS m
            WHERE d.v LIKE '%@%'
            UNION ALL
            SELECT d.vid, 'phone', 'p:' || pv.v
            FROM d CROSS JOIN LATERAL regexp_matches(d.v, :fp_phone_candidate, 'g') AS m
            CROSS JOIN LATERAL (SELECT substring(m[1] FROM :fp_phone_at_end) AS phone) ph
            CROSS JOIN LATERAL unnest({phone_variants_sql("ph.phone")}) AS pv(v)
            WHERE d.v ~ '[0-9]' AND ph.phone IS NOT NULL AND length(pv.v) >= :fp_min_phone
            UNION ALL
            SELECT d.vid, 'in_text', 'v:' || substr(r.run, i, k)
            FROM d CROSS JOIN LATERAL (
                SELECT m[1] AS run FROM regexp_matches(d.norm, :fp_cjk_run, 'g') AS m) r
            CROSS JOIN generate_series(1, length(r.run)) AS i
            CROSS JOIN unnest(ARRAY{list(CJK_GRAMS)}) AS k
            WHERE d.norm ~ :fp_cjk_any AND i + k - 1 <= length(r.run)
              AND substr(r.run, i, k) <> d.norm
        )"""


# ---------------------------------------------------------------- in Python

_NON_WORD = re.compile(NON_WORD)
_EMAIL = re.compile(EMAIL)
_PHONE_CANDIDATE = re.compile(PHONE_CANDIDATE)
_PHONE_AT_END = re.compile(PHONE_AT_END)
_CJK_RUN = re.compile(CJK_RUN)
_NOT_ONLY_DIGITS = re.compile("[^0-9 ]")
_FOLD = str.maketrans(UPPER + CAPITALS, UPPER.lower() + SMALL)


def normalise(text: str) -> str:
    """Case folded (the shared table); every run of characters not letters or digits becomes one
    space."""
    return _NON_WORD.sub(" ", text.translate(_FOLD)).strip(" ")


def is_number(words: str) -> bool:
    """Only digits and spaces: a count or an id, which is never taken for a name."""
    return _NOT_ONLY_DIGITS.search(words) is None


def phone_variants(phone: str) -> set[str]:
    """The phone's digits without trunk or international prefix, and without a 1-3 digit country
    code."""
    digits = re.sub("[^0-9]", "", phone)
    intl = phone.startswith("+") or digits.startswith("00")
    core = re.sub("^00?", "", digits)
    forms = [core] + ([core[1:], core[2:], core[3:]] if intl else [])
    return {f for f in forms if len(f) >= MIN_PHONE_DIGITS}


def tokens(
    text: str, max_words: int = MAX_GRAM_WORDS, words_of: Callable[[str], str] | None = None
) -> set[tuple[str, str]]:
    """(kind, token) pairs of a text: its whole normal form ('value'), emails and phones in it, and
    every run of 1 to `max_words` words or 2-4 CJK characters that is not the whole text
    ('in_text'). `tokens_sql` makes the same with the default `max_words`.

    `words_of` maps the normal form to the text whose words are run over (the run log's digits
    folded first, lifecycle.guard.provenance.log_tokens); its runs are compared with the whole
    normal form as mapped."""
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
    whole = words_of(norm) if words_of and norm else norm
    words = whole.split(" ") if whole else []
    for i in range(len(words)):
        for k in range(1, max_words + 1):
            gram = " ".join(words[i : i + k])
            if i + k <= len(words) and gram != whole and not is_number(gram):
                out.add(("in_text", "v:" + gram))
    for run in (m.group(0) for m in _CJK_RUN.finditer(norm)):
        for i in range(len(run)):
            for k in CJK_GRAMS:
                if i + k <= len(run) and run[i : i + k] != norm:
                    out.add(("in_text", "v:" + run[i : i + k]))
    return out
