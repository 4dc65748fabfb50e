"""Raw values in a run log: no personal raw value appears in the texts a scheduler stored about its
runs (messages, metadata, tags, error text), given as (location, item number, text).

The texts are tokenized and hashed in Python with the guard's key and compared in SQL through the
same temp table as the zone's columns, so the log's text never enters the database. Reading the
log is the caller's business (assets/guard.py reads Dagster's event log storage).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.engine import Engine

from lifecycle.checks import CheckResult
from lifecycle.guard import fingerprints
from lifecycle.guard.key import GuardKey
from lifecycle.guard.provenance import own_names_pattern, without_own_names
from lifecycle.guard.scan import scan
from lifecycle.guard.tokens import TEXT_GRAM_WORDS, is_number, tokens
from lifecycle.policy import Policy


@scan
def raw_values_in_run_log(
    engine: Engine,
    policy: Policy,
    key: GuardKey,
    texts: Iterable[tuple[str, int, str]],
    log: str = "run log",
    own_names: Iterable[str] = (),
) -> CheckResult:
    """No personal raw value appears in the run log's texts: (location, item number, text).

    A finding names `log` as its table and the text's location as its column. `own_names`: the
    project's own names, cut out of the texts where written whole (lifecycle.guard.provenance,
    own names).
    """
    texts = list(texts)
    own = own_names_pattern(own_names)

    def tokenize(text: str) -> set[tuple[str, str]]:
        return {
            (kind, token)
            for piece in without_own_names(text, own)
            for kind, token in tokens(piece, TEXT_GRAM_WORDS)
            if not (token.startswith("v:") and is_number(token[2:]))
        }

    with engine.begin() as conn:
        fingerprints.create_candidates(conn)
        kept = fingerprints.add_text_candidates(conn, key, log, texts, tokenize=tokenize)
        hits = fingerprints.find_hits(conn, key, policy)
    rows = {(log, *where): n for where, n in kept.hit_rows({h.h for h in hits}).items()}
    return CheckResult(
        findings=[match.finding() for match in fingerprints.matches(hits, rows)],
        scanned={"texts": len(texts), "distinct_tokens": kept.distinct_tokens()},
    )
