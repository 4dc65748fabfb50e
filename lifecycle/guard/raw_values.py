"""Raw values in analytics: no analytics value, nor a name, phone or email inside one, equals a
personal value still held in the raw zone (keyed fingerprints, lifecycle.guard.fingerprints).

Analytics is read only by the guard's reader (lifecycle.guard.reader), which hashes the zone's
tokens; the job's connection hashes the raw zone and joins the two sets of digests in temp tables,
so it never runs code an analytics author wrote. A column the reader cannot read is a finding for
that column; the others are still compared.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.checks import CheckResult, Finding
from lifecycle.guard import changes, fingerprints, positions
from lifecycle.guard.key import GuardKey
from lifecycle.guard.privilege import INSUFFICIENT_PRIVILEGE
from lifecycle.guard.provenance import FOLD_DIGITS, FOLD_GROUPS, Provenance, log_tokens
from lifecycle.guard.reader import reader_engine
from lifecycle.guard.scan import reason, scan
from lifecycle.guard.tokens import SQL_PARAMS as TOKENIZER
from lifecycle.guard.zone import ANALYTICS, discover, quote_name, relation_sql
from lifecycle.ledger import chain
from lifecycle.policy import Policy
from lifecycle.retention import erasure
from lifecycle.sales import daily
from lifecycle.sales.catalogue import PRODUCT_LINE_COLUMNS

SCAN = "raw_values"  # its positions (lifecycle.guard.changes)
# Columns compared as labels: whole values (and emails, phones), not the words inside them. The
# sales builds fill these with the catalogue's product lines, which the policy maps as a table of
# no personal data, and real catalogues name lines with everyday words that are also one-word raw
# values: Olist's `artigos_de_natal` (Christmas goods) met the receiver city "natal" word by word
# and failed the night on lifecycle's own tables. A label equal to a raw value whole still fails.
LABEL_COLUMNS = frozenset(PRODUCT_LINE_COLUMNS)


def unreadable(table: str, column: str, exc: sa.exc.StatementError) -> Finding:
    """A relation or column the reader could not read: unchecked, so a finding (no value in it)."""
    refused = getattr(exc.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE
    fix = (
        "its owner must let lifecycle_analyst read it, as the guard reads what analysts can"
        if refused
        else "fix or drop the relation"
    )
    return Finding(
        table,
        column,
        "check_error",
        0,
        detail=f"the guard's reader could not read it ({reason(exc)}); unchecked until {fix}",
    )


@scan
def raw_values_in_zone(
    engine: Engine, policy: Policy, key: GuardKey, reader: Engine | None = None
) -> CheckResult:
    """No analytics value, nor a name, phone or email inside one, equals a personal raw value.

    Three phases: the reader hashes every distinct token of the zone into the job's temp table;
    the job joins them against the raw zone's digests in one pass; the reader counts the rows of
    the columns that hit. In the nightly (lifecycle.guard.changes) the reader hashes only the
    relations changed since their last clean scan; the digests kept from the others, and the
    changed relations' tokens that a past clean pass already compared (kept under any relation),
    meet only the raw values written since the last scan; a token never compared has the raw zone
    hashed whole, and all meet it in that same pass (fingerprints.find_hits, mark_compared).
    """
    return _compare(engine, policy, key, reader)[0]


def raw_values_in_zone_and_log(
    engine: Engine,
    policy: Policy,
    key: GuardKey,
    reader: Engine | None,
    texts: Iterable[tuple[str, int, str]],
    log: str,
    provenance: Provenance | None = None,
    expected: Iterable[tuple[str, int, str]] = (),
) -> tuple[CheckResult, CheckResult]:
    """The zone's check (as `raw_values_in_zone`) and a run log's (as
    `run_log.raw_values_in_run_log`) from one comparison with the raw zone: the log's tokens join
    the zone's in the same candidates, the raw zone is hashed once for both, and the hits are
    split by relation. A night hashes every distinct raw value once instead of once per check.
    With `provenance`, the log's texts are tokenized as lifecycle.guard.provenance.log_tokens
    does (spans the project or Dagster wrote cut out, digits folded), and on a night the log's
    clean digests are kept like the zone's, so only tokens no clean pass has compared need the
    raw zone whole. `expected`: texts the log will show later (the events written after this
    comparison), compared and kept beside the project's own (OWN_WORDS), not counted as the log's.

    An error fails both results alike (neither has been proved); each carries the shared time.
    """
    logged: list[CheckResult] = []

    @scan
    def both() -> CheckResult:
        zone, from_log = _compare(
            engine, policy, key, reader, (list(texts), log, provenance, list(expected))
        )
        logged.append(from_log)
        return zone

    zone = both()
    from_log = logged[0] if logged else CheckResult(error=zone.error)
    from_log.seconds = zone.seconds
    return zone, from_log


def _compare(
    engine: Engine,
    policy: Policy,
    key: GuardKey,
    reader: Engine | None = None,
    also_log: tuple[list[tuple[str, int, str]], str, Provenance | None, list] | None = None,
) -> tuple[CheckResult, CheckResult | None]:
    """The zone's comparison, and with `also_log` (texts, log name, provenance or None, texts
    the log will show later) the log's in the same pass."""
    reader = reader or reader_engine(engine)
    findings: list[Finding] = []
    compared_with = _compared_with(policy, key)
    tonight = changes.plan(engine, SCAN, compared_with)
    with reader.connect() as rconn, engine.begin() as conn:
        zone = discover(rconn)
        read_at = conn.execute(_SNAPSHOT_XMIN).scalar()
        raw_now = changes.tables_position(conn, _raw_tables(policy))
        new_since, raw_changed = None, True
        if tonight.night and not tonight.full:
            new_since, raw_changed = _raw_since(engine, read_at, raw_now, compared_with)
            if new_since is None:
                tonight = tonight.everything()  # no usable raw position: read the whole zone
        relations = tonight.wanted(zone)
        unchanged = [r.table for r in zone if r.name in tonight.unchanged]
        # Kept digests matter only when the raw zone changed: nothing else could match them now.
        kept = unchanged if raw_changed else []
        fingerprints.create_candidates(conn)
        fingerprints.add_kept_candidates(conn, kept)
        columns = {
            (r.table, c.name): (relation_sql(rconn, r.name), quote_name(rconn, c.name))
            for r in zone
            for c in r.text_columns
        }
        tokens = 0
        for r in relations:
            for c in r.text_columns:
                where = (r.table, c.name)
                try:
                    with rconn.begin_nested(), conn.begin_nested():
                        tokens += fingerprints.add_column_candidates(
                            rconn, conn, key, *columns[where], *where, where in LABEL_COLUMNS
                        )
                except sa.exc.DBAPIError as exc:
                    findings.append(unreadable(*where, exc))
        logged, log_name, provenance = None, None, None
        if also_log is not None:
            texts, log_name, provenance, expected = also_log
            tokenize = (lambda text: log_tokens(text, provenance)) if provenance else None
            own = [*OWN_WORDS, *expected] if provenance and tonight.night else []
            logged = fingerprints.add_text_candidates(
                conn, key, log_name, [*texts, *own], tokenize=tokenize
            )
        # Fresh tokens (a relation read tonight, or the log's) that no clean pass has compared
        # with the raw zone have it hashed whole; those kept from one meet only new raw values.
        never = fingerprints.mark_compared(conn) if new_since is not None else None
        fresh_tokens = tokens + (logged.distinct_tokens() if logged is not None else 0)
        fresh = fresh_tokens > 0
        whole = fresh and (never is None or never > 0)
        # Every candidate met the raw zone before and it has not changed since: nothing can match,
        # and no raw table is read (its statistics arriving late: the position stays, see below).
        read_raw = whole or raw_changed
        every_hit = []
        if read_raw:
            folded = logged is not None and logged.folded
            every_hit = fingerprints.find_hits(conn, key, policy, new_since, folded)
        hits = [h for h in every_hit if h.relation != log_name]
        if tonight.night:
            logs = (log_name,) if log_name else ()
            fingerprints.keep_candidates(
                conn, [r.table for r in relations], [r.table for r in zone], logs
            )
            if logged is not None and provenance is not None and read_raw:
                fingerprints.keep_log_candidates(conn, log_name, replace=new_since is None)
    rows = {}
    with reader.connect() as rconn:
        for where in sorted({(h.relation, h.column) for h in hits}):
            digests = [h.h for h in hits if (h.relation, h.column) == where]
            try:
                with rconn.begin_nested():
                    counted = fingerprints.column_hit_rows(
                        rconn, key, *columns[where], digests, where in LABEL_COLUMNS
                    )
            except sa.exc.DBAPIError as exc:
                findings.append(unreadable(*where, exc))
                continue
            rows.update({(*where, kind): count for kind, count in counted.items()})
    found = fingerprints.matches(hits, rows)
    findings += [match.finding() for match in found]
    dirty = {f.table.removeprefix(f"{ANALYTICS}.") for f in findings}
    tonight.save(engine, [r.name for r in relations], dirty)
    if tonight.night and read_raw and (kept or not unchanged):  # all met tonight's raw zone
        positions.save(
            engine,
            SCAN,
            {RAW_SINCE: read_at, RAW_SIGNATURE: raw_now, RAW_COMPARED: _kept_terms(compared_with)},
            tonight.night.now,
            False,
        )
    zone = CheckResult(
        findings=findings,
        scanned={
            "relations": len(relations),
            "text_columns": sum(len(r.text_columns) for r in relations),
            "distinct_tokens": tokens,
            "raw_columns": len(fingerprints.raw_sources(policy)),
            **tonight.metadata(len(relations)),
            **(
                {
                    "raw_values": _raw_read(kept, fresh, whole, read_raw),
                    "tokens_never_compared": never if never is not None else fresh_tokens,
                }
                if tonight.night
                else {}
            ),
        },
    )
    if also_log is None:
        return zone, None
    texts, log, provenance, _ = also_log
    log_hits = [h for h in every_hit if h.relation == log]
    rows = {(log, *where): n for where, n in logged.hit_rows({h.h for h in log_hits}).items()}
    explained = dict(provenance.explained) if provenance else {}
    return zone, CheckResult(
        findings=[match.finding() for match in fingerprints.matches(log_hits, rows)],
        scanned={
            "texts": len(texts),
            "distinct_tokens": logged.distinct_tokens(),
            **({"explained_spans": sum(explained.values())} if provenance else {}),
            **{f"explained_{what.replace(' ', '_')}": n for what, n in explained.items()},
            **({"raw_values": _raw_read(kept, fresh, whole, read_raw)} if tonight.night else {}),
        },
    )


# Where the raw zone was read last (a snapshot's xmin, as xid8): rows written since have an xmin
# at least its low 32 bits, within the same xid epoch.
RAW_SINCE = "raw zone read at"
RAW_SIGNATURE = "raw zone signature"  # its statistics then: unchanged, no raw value is new
# What the kept digests were compared with (raw columns, tokenizer, key) and on what terms (hits
# never kept): a digest kept under other terms proves nothing tonight, so the zone is read whole.
RAW_COMPARED = "raw zone compared with"
_KEPT_TERMS = "kept digests: compared with the raw zone, no hit"


def _kept_terms(compared_with: str) -> int:
    return changes.position_of(f"{_KEPT_TERMS}|{compared_with}")


_SNAPSHOT_XMIN = sa.text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


def _raw_tables(policy: Policy) -> list[str]:
    return sorted({spec.table for spec in policy.raw.tables().values()})


def _raw_since(
    engine: Engine, read_at: int, raw_now: int, compared_with: str
) -> tuple[int | None, bool]:
    """The low 32 bits of the last scan's raw position (None when there is none, the xid epoch
    has turned since: a row's 32-bit xmin then does not tell old from new, or the kept digests
    were compared with other raw columns, tokenizer or key, or kept on other terms), and whether
    the raw zone's signature changed since. Unchanged, the position is not moved, so a write whose
    statistics had not arrived yet is still read as new the next night."""
    stored = positions.positions(engine, SCAN, [RAW_SINCE, RAW_SIGNATURE, RAW_COMPARED])
    since = stored.get(RAW_SINCE)
    if since is None or since >> 32 != read_at >> 32 or since > read_at:
        return None, True
    if stored.get(RAW_COMPARED) != _kept_terms(compared_with):
        return None, True
    return since & 0xFFFFFFFF, stored.get(RAW_SIGNATURE) != raw_now


RAW_READ = ("all and new", "all", "new only", "none (unchanged)")  # _raw_read's words
# Texts the project writes on regular nights, compared with the raw zone beside every night's run
# log and kept with it: this check's words in its metadata, the sales refresh's line on a night
# that rebuilds only its days, the ledger check's on a night that verifies from a seal, the
# erasure's on a night that cleared nothing. Each is
# written after this check or on a kind of night the first night is not, so the log first shows
# it a night or two later; never compared, it would send that night's pass over the raw zone
# whole. Only the texts' counts vary, and counts are folded.
OWN_WORDS = [
    (where, 0, text)
    for where, texts in (
        ("the raw-value check's own metadata", RAW_READ),
        ("the sales refresh on a regular night", daily.REGULAR_TEXTS),
        ("the ledger check on a night it verifies from a seal", chain.REGULAR_TEXTS),
        ("the erasure on a night that cleared nothing", erasure.REGULAR_TEXTS),
    )
    for text in texts
]


def _raw_read(kept: list[str], fresh: bool, whole: bool, read: bool = True) -> str:
    """What of the raw zone the scan read: all (for tokens no clean pass compared with it: of
    relations read tonight, or a run log's compared in the same pass), only values written since
    the last scan (for kept digests and tokens compared before), or none (`read` false: every
    token met it before and it has not changed since)."""
    all_and_new, all_, new_only, none = RAW_READ
    if whole:
        return all_and_new if kept else all_
    return new_only if read and (kept or fresh) else none


def _compared_with(policy: Policy, key: GuardKey) -> str:
    """What the zone's tokens are compared with: the raw columns, the tokenizer and the key (a
    new key makes every kept digest useless, so every relation is read again)."""
    key_id = key.digest("lifecycle guard: kept digests").hex()
    folding = (FOLD_DIGITS, FOLD_GROUPS)  # kept log digests are of folded tokens
    return repr(
        (
            sorted(fingerprints.raw_sources(policy).values()),
            TOKENIZER,
            folding,
            key_id,
            sorted(LABEL_COLUMNS),
        )
    )
