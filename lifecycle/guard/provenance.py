"""Which parts of a run log's text the project or Dagster wrote, so the night's new log tokens that
need the raw zone are only those nobody can account for (docs/guard.md, "What the run log's
tokens are compared as").

A night's run log held about 1,200 tokens the previous night's did not: run ids, Dagster's data
versions, the ledger's hashes, compute-log keys, durations, process ids, timestamps, counts beside
words. Each used to have the whole raw zone hashed. Three things take them out, none of which
lets a personal value through:

- **Identifiers by identity.** A span of a text that *is* one of this instance's run ids, a data
  version Dagster computed, a hash the ledger holds, or a compute-log key of a run read is cut out
  before the text is tokenized; the rest of the text, on either side, is tokenized as before. The
  span is compared with those records exactly (a lookup, never a shape), so a value that merely
  looks like a run id or a hash is still compared. What is cut out is Dagster's or the ledger's own
  string; a personal value could only hide in it by containing one of them whole.
- **Embedded text decoded.** A `data:` URI in base64 (the sales chart's SVG, drawn inline in its
  markdown) is compared as the text it encodes, not as its base64 characters: those are new
  tokens whenever the picture changes (every night, as the chart's window moves), and a value
  inside the picture is only visible decoded. Markup is compared tag by tag and text by text
  (a value is whole in an attribute or a label); a payload that is not UTF-8 text stays as
  written.
- **Numbers folded, not dropped.** Each run of digits in a word becomes one `0` (`in 86ms`
  and `in 879ms` both `in 0ms`), before the text's runs of words are formed, on the log's side
  and on the raw zone's (lifecycle.guard.fingerprints, the `f:` forms). Folding is a function of
  the text, so a raw value written into the log still meets itself folded: the comparison finds
  every value it found before, and a few more that differ only in digits (a false finding fails
  the night; it never hides one). Phones are compared by their exact digits, unfolded, as before.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.guard.tokens import TEXT_GRAM_WORDS, is_number, tokens

UUID_SPAN = re.compile(
    r"(?<![0-9A-Za-z])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![0-9A-Za-z])"
)
SHA256_SPAN = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{64}(?![0-9A-Za-z])")
KEY_SPAN = re.compile(r"(?<![0-9A-Za-z])[a-z]{8}(?![0-9A-Za-z])")  # a compute-log key's shape
# A date with a time of day (ISO 8601, as Dagster and the project write instants): the one span cut
# by its shape. Its only tokens that are not folded are the phone forms of its digit runs, and its
# fractional seconds (`17:48:51.938225` -> `51938225`) made a new "phone" most nights. A digit
# run joined by `:` or a decimal point to more digits is a time, never a phone, as the pattern
# check rules too (docs/guard.md, Value patterns).
TIMESTAMP_SPAN = re.compile(
    r"(?<![0-9A-Za-z])[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?"
    r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?(?![0-9A-Za-z])"
)
# A base64 `data:` URI (RFC 2397): its payload is compared decoded (the module's docstring).
DATA_URI = re.compile(
    r"data:[A-Za-z0-9.+/-]*(?:;[A-Za-z0-9.+=-]+)*;base64,(?P<payload>[A-Za-z0-9+/]+={0,2})"
)
MARKUP_PART = re.compile(r"<[^<>]*>|[^<>]+")
# Folding, as regular expressions PostgreSQL and Python read alike (the raw side folds in SQL,
# lifecycle.guard.fingerprints): every run of digits one `0`, then words that are `0` in a row one
# `0`, so a count written `3,001` or a duration `1.83` (normalised to `3 001`, `1 83`) folds like
# `7` does. Only whole words merge (`a0 0b` stays), so the fold of a run of a text's words is a run
# of the text's folded words, which is what lets the log fold before it forms runs (log_tokens).
FOLD_DIGITS = "[0-9]+"
FOLD_GROUPS = "(?<![^ ])0( 0)+(?![^ ])"
_DIGITS = re.compile(FOLD_DIGITS)
_GROUPS = re.compile(FOLD_GROUPS)
# Dagster's messages that carry a duration (dagster_shared.utils.timing.format_duration): the
# duration is cut out by its shape, within these messages only (and a text that is nothing but
# one, as a resource's `init_time`). It was the one part of them that changed, and its forms
# (`837ms`, `1.83s`, `4m52s`) made new tokens whenever a step or a run crossed a second or a
# minute.
DURATION = r"(?P<d>[0-9]+(?:\.[0-9]+)?(?:ms|s)|[0-9]+m[0-9]+s|[0-9]+h[0-9]+m)"
DAGSTER_DURATIONS = tuple(
    re.compile(message.format(d=DURATION))
    for message in (
        r'^Finished execution of step "[^"]*" in {d}\.$',
        r"^Finished steps in process \(pid: [0-9]+\) in {d}$",
        r"^Multiprocess executor: parent process exiting after {d} \(pid: [0-9]+\)$",
        r"^{d}$",
    )
)


def own_names_pattern(names: Iterable[str]) -> re.Pattern | None:
    """A pattern finding any of the project's own names (`own_names` below) written whole: not
    inside a longer identifier. Only names of two parts or more (joined by `_` or `/`) are kept;
    a one-word name has the shape of a one-word personal value and is never cut."""
    whole = sorted({n for n in names if len(n) >= 3 and re.search("[A-Za-z0-9][_/][A-Za-z0-9]", n)})
    if not whole:
        return None
    alternatives = "|".join(re.escape(n) for n in sorted(whole, key=len, reverse=True))
    return re.compile(f"(?<![A-Za-z0-9_])(?:{alternatives})(?![A-Za-z0-9_])")


# The project's own sentences that use the words its names do, with only a date or a count
# between their words: a text that is one of them whole is the project's and is not compared
# (the sales previews' empty states, lifecycle/sales/charts.py and previews.py; if their wording
# changes, the text is compared again and a one-word value `Sales` fails the night: never a miss).
_DATE = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
PROJECT_SENTENCES = tuple(
    re.compile(sentence)
    for sentence in (
        f"^No published sales between {_DATE} and {_DATE}\\.$",
        "^No sales published in the last [0-9]+ days\\.$",
    )
)


def is_project_sentence(text: str) -> bool:
    """The text is one of PROJECT_SENTENCES, whole."""
    return any(sentence.match(text) for sentence in PROJECT_SENTENCES)


def without_own_names(text: str, pattern: re.Pattern | None) -> list[str]:
    """The text cut at every own name `pattern` finds (no run of words spans a cut); nothing of a
    text that is one of the project's own sentences (PROJECT_SENTENCES)."""
    if is_project_sentence(text):
        return []
    if pattern is None:
        return [text]
    return [piece for piece in pattern.split(text) if piece.strip()]


@dataclass(frozen=True)
class Provenance:
    """Strings the project or Dagster wrote, each confirmed against its record: this instance's
    run ids, the data versions Dagster computed, the ledger's hashes, the runs' compute-log keys."""

    run_ids: frozenset[str] = frozenset()  # (timestamps need no record: see TIMESTAMP_SPAN)
    hashes: frozenset[str] = frozenset()
    log_keys: frozenset[str] = frozenset()
    # The project's own names: those the events read record in their structural fields (step,
    # asset, check, job, metadata label, table column; orchestration.history.recorded_names), the
    # analytics zone's relation names and the policy's configuration values (the time zone).
    # Written whole inside a text, each is cut out: `refreshed_sales_volume` holds the word
    # `sales`, `America/Sao_Paulo` the words `sao paulo`, and a customer's one-word city `Sales`
    # or `São Paulo` made every night fail. A name is cut only where it stands whole, so the same
    # words written as words (`delivered to Sao Paulo`) are compared as before.
    own_names: frozenset[str] = frozenset()
    explained: dict[str, int] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_own", own_names_pattern(self.own_names))

    def pieces(self, text: str) -> list[str]:
        """The text cut at every span these records account for, and at a timestamp and the
        duration of Dagster's timed messages (by shape); counts what was cut."""
        spans = []
        for pattern, known, what in (
            (UUID_SPAN, self.run_ids, "run ids"),
            (SHA256_SPAN, self.hashes, "hashes"),
            (KEY_SPAN, self.log_keys, "compute log keys"),
            (TIMESTAMP_SPAN, None, "timestamps"),
        ):
            if known is not None and not known:
                continue
            for match in pattern.finditer(text):
                if known is None or match.group(0) in known:
                    spans.append(match.span())
                    self.explained[what] = self.explained.get(what, 0) + 1
        if is_project_sentence(text):
            self.explained["project sentences"] = self.explained.get("project sentences", 0) + 1
            return []
        if self._own is not None:
            for match in self._own.finditer(text):
                spans.append(match.span())
                self.explained["own names"] = self.explained.get("own names", 0) + 1
        for message in DAGSTER_DURATIONS:
            if timed := message.match(text):
                spans.append(timed.span("d"))
                self.explained["durations"] = self.explained.get("durations", 0) + 1
                break
        decoded = []
        for match in DATA_URI.finditer(text):
            if (inner := _decoded(match.group("payload"))) is not None:
                spans.append(match.span("payload"))
                for part in _markup_parts(inner):
                    decoded += self.pieces(part)
                self.explained["embedded texts"] = self.explained.get("embedded texts", 0) + 1
        if not spans:
            return [text]
        out, at = [], 0
        for start, end in sorted(spans):
            if start >= at:
                out.append(text[at:start])
                at = end
        out.append(text[at:])
        return [piece for piece in out if piece.strip()] + decoded


def _markup_parts(text: str) -> list[str]:
    """Markup (an SVG) as its tags and the texts between them, each compared alone: a value is
    whole inside one (an attribute, a label), and the picture's whole text, which changes with the
    order of its parts, is no token. Any other text as it is."""
    return MARKUP_PART.findall(text) if text.lstrip().startswith("<") else [text]


def _decoded(payload: str) -> str | None:
    """A base64 payload's text, or None when it is not base64 of UTF-8 text (an image's bytes)."""
    try:
        return base64.b64decode(payload, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def fold(token_text: str) -> str:
    """Every run of digits as one `0`, and `0` words in a row as one: `in 879ms` -> `in 0ms`,
    `3 001 re hashed` -> `0 re hashed` (the raw side folds the same way)."""
    return _GROUPS.sub("0", _DIGITS.sub("0", token_text))


def log_tokens(text: str, provenance: Provenance) -> set[tuple[str, str]]:
    """(kind, token) pairs of a log text as the nightly compares them: the text cut at the spans
    `provenance` accounts for, each piece tokenized as `tokens` does; bare numbers left out (as
    before: a log is full of counts); word tokens holding a digit folded (`f:`); phones exact.

    Runs of words are formed over the folded words, so a count with more or fewer digit groups
    (`85 re-hashed`, `3,001 re-hashed`) moves no run's edge: runs of unfolded words ended on the
    count's second group one night and a word further the next, a new token each time. Sound
    because a raw value that is a run of the text's words folds to a run of its folded words
    (FOLD_GROUPS merges whole words only), and the raw side compares values folded."""
    out: set[tuple[str, str]] = set()
    for piece in provenance.pieces(text):
        for kind, token in tokens(piece, TEXT_GRAM_WORDS, words_of=fold):
            body = token[2:]
            if token.startswith("v:"):
                if is_number(body):
                    continue
                if _DIGITS.search(body):
                    token = "f:" + fold(body)
            out.add((kind, token))
    return out


_RECORDED = sa.text("""
    SELECT encode(h, 'hex') FROM (
        SELECT unnest(ARRAY[link_hash, content_hash, prev_hash]) AS h FROM lifecycle.ledger_links
        UNION ALL
        SELECT unnest(ARRAY[seal_hash, link_hash]) FROM lifecycle.ledger_seals) x
    WHERE h = ANY(CAST(:hashes AS bytea[]))
""")


def recorded_hashes(conn: Connection, texts: Iterable[tuple[str, int, str]]) -> set[str]:
    """The sha256-shaped spans of `texts` that the ledger holds as a link, content or seal hash
    (one row per chained statement or verification: a small read, never the raw zone)."""
    spans = {m.group(0) for _, _, text in texts for m in SHA256_SPAN.finditer(text)}
    if not spans:
        return set()
    found = conn.execute(_RECORDED, {"hashes": [bytes.fromhex(h) for h in sorted(spans)]})
    return set(found.scalars())
