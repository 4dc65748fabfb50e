"""Value patterns: no text in analytics looks like an email, phone, Luhn-valid card number, street
address or national id, whoever it belongs to. one SQL statement per relation counts inside the database
(lifecycle.guard.counts); in the nightly a changed table is read only for the rows written since
its last clean scan (lifecycle.guard.new_rows);
the masked samples are computed in SQL, so no value reaches Python. Both read as the guard's
reader (lifecycle.guard.reader), never as the job.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.checks import CheckResult, Finding
from lifecycle.guard import changes, counts, new_rows, patterns
from lifecycle.guard.key import SAMPLES, GuardKey, hmac_sql, mask_sql
from lifecycle.guard.reader import reader_engine
from lifecycle.guard.scan import scan
from lifecycle.guard.zone import ANALYTICS, Relation, discover, quote_name, relation_sql

PHRASES = {
    "email": "email addresses",
    "phone": "phone numbers",
    "street_address": "street addresses",
    "card_number": "payment card numbers (Luhn-valid)",
    "national_id": "national identity numbers (a CPF with valid check digits)",
}
SCAN = "personal_patterns"  # its positions (lifecycle.guard.changes)
# What the relations are compared with: new patterns read every relation again.
RULES = repr([patterns.matches_sql(kind, "v") for kind in patterns.KINDS])


def pattern_rules(engine: Engine, relation: Relation) -> list[counts.Rule]:
    """What is counted in one relation: each text column against every kind of personal value.

    Email and phone are plain regexes; card numbers, addresses and json/array columns are SQL
    conditions around them. All are counted in one read of the relation.
    """
    rules = []
    for column in relation.text_columns:
        text = f"{quote_name(engine, column.name)}::text"
        for kind in patterns.KINDS:
            if column.text and kind in patterns.PLAIN_REGEX_KINDS:
                rules.append(counts.Rule(column.name, kind, regex=patterns.VALUE_PATTERNS[kind]))
            else:
                rules.append(
                    counts.Rule(column.name, kind, condition=patterns.matches_sql(kind, text))
                )
    return rules


def _samples(
    conn: Connection, key: GuardKey, relation: str, column: str, kind: str
) -> tuple[str, ...]:
    """Masked forms of the first matching values, computed in SQL so no value reaches Python."""
    text = f"{quote_name(conn, column)}::text"
    sql = (
        f"SELECT {mask_sql('length(s.v)', hmac_sql('s.v'))} "
        f"FROM (SELECT {text} AS v FROM {relation_sql(conn, relation)} "
        f"WHERE {patterns.matches_sql(kind, text)} LIMIT {SAMPLES}) s"
    )
    return tuple(conn.execute(sa.text(sql), key.params()).scalars())


def _finding(conn: Connection, key: GuardKey, o: counts.Outcome) -> Finding:
    """A rule found broken (with masked samples), or one that could not be checked."""
    table = f"{ANALYTICS}.{o.relation}"
    if o.error:
        what = f"{o.kind} in this column" if o.column else "the relation"
        return Finding(
            table,
            o.column,
            "check_error",
            0,
            detail=(
                f"the guard could not check {what} ({o.error}); it stays unchecked until fixed"
            ),
        )
    samples = _samples(conn, key, o.relation, o.column, o.kind)
    return Finding(
        table,
        o.column,
        o.kind,
        o.count,
        samples,
        detail=f"values look like {PHRASES[o.kind]}; remove or aggregate them",
    )


@scan
def personal_value_patterns(
    engine: Engine, key: GuardKey, reader: Engine | None = None
) -> CheckResult:
    """No text in analytics looks like an email, phone, Luhn-valid card number, street address or
    national id (a CPF with valid check digits)."""
    reader = reader or reader_engine(engine)
    tonight = changes.plan(engine, SCAN, RULES)
    with reader.connect() as conn:
        relations = tonight.wanted(discover(conn))
        rows = new_rows.plan(conn, engine, SCAN, tonight, [r.name for r in relations], RULES)
    outcomes = counts.validate(
        reader, ANALYTICS, {r.name: pattern_rules(reader, r) for r in relations}, rows.conditions()
    )
    with reader.connect() as conn:
        findings = [_finding(conn, key, o) for o in outcomes]
    read, dirty = [r.name for r in relations], [o.relation for o in outcomes]
    tonight.save(engine, read, dirty)
    rows.save(engine, read, dirty)
    text_columns = sum(len(r.text_columns) for r in relations)
    return CheckResult(
        findings,
        scanned={
            "relations": len(relations),
            "text_columns": text_columns,
            **tonight.metadata(len(relations)),
            **rows.metadata(),
        },
    )
