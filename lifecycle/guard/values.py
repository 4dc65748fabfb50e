"""Value patterns: no text in analytics looks like an email, phone, Luhn-valid card number or street
address, whoever it belongs to. Great Expectations counts inside the database (lifecycle.guard.gx);
the masked samples are computed in SQL, so no value reaches Python. Both read as the guard's
reader (lifecycle.guard.reader), never as the job.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.checks import CheckResult, Finding
from lifecycle.guard import gx, patterns
from lifecycle.guard.key import SAMPLES, GuardKey, hmac_sql, mask_sql
from lifecycle.guard.reader import reader_engine
from lifecycle.guard.scan import scan
from lifecycle.guard.zone import ANALYTICS, Relation, discover, quote_name, relation_sql

PHRASES = {
    "email": "email addresses",
    "phone": "phone numbers",
    "street_address": "street addresses",
    "card_number": "payment card numbers (Luhn-valid)",
}


def pattern_rules(engine: Engine, relation: Relation) -> list[gx.Rule]:
    """What GX checks in one relation: each text column against every kind of personal value.

    Email and phone are GX regex expectations (one scan of the relation for all of them); card
    numbers, addresses and json/array columns are GX unexpected-row queries around the same SQL.
    """
    rules = []
    for column in relation.text_columns:
        text = f"{quote_name(engine, column.name)}::text"
        for kind in patterns.KINDS:
            if column.text and kind in patterns.VALUE_PATTERNS:
                rules.append(gx.Rule(column.name, kind, regex=patterns.VALUE_PATTERNS[kind]))
            else:
                rules.append(gx.Rule(column.name, kind, condition=patterns.matches_sql(kind, text)))
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


def _finding(conn: Connection, key: GuardKey, o: gx.Outcome) -> Finding:
    """A rule GX found broken (with masked samples), or one it could not check."""
    table = f"{ANALYTICS}.{o.relation}"
    if o.error:
        what = f"{o.kind} in this column" if o.column else "the relation"
        return Finding(
            table,
            o.column,
            "check_error",
            0,
            detail=(
                f"Great Expectations could not check {what} ({o.error}); it stays unchecked until "
                "fixed"
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
    """No text in analytics looks like an email, phone, Luhn-valid card number or street address."""
    reader = reader or reader_engine(engine)
    with reader.connect() as conn:
        relations = discover(conn)
    outcomes = gx.validate(reader, ANALYTICS, {r.name: pattern_rules(reader, r) for r in relations})
    with reader.connect() as conn:
        findings = [_finding(conn, key, o) for o in outcomes]
    text_columns = sum(len(r.text_columns) for r in relations)
    return CheckResult(
        findings, scanned={"relations": len(relations), "text_columns": text_columns}
    )
