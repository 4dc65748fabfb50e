"""The leak guard: proves that no raw personal data reaches analytics, and that analysts cannot read it.

Each check is a plain function over the database returning a `CheckReport` of findings: table,
column, kind, how many rows, and masked samples (length and keyed-hash prefix), never a value.
The zone is discovered at run time: every table, view and materialized view in `analytics`,
whoever made it. The Dagster asset checks (assets/guard.py) and `lifecycle guard` run the same
functions; docs/guard.md says what each one looks for and how to fix what it finds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle import fingerprint, gx, patterns
from lifecycle.db import describe_db_error
from lifecycle.fingerprint import GuardKey
from lifecycle.policy import Policy, quote_ident

ANALYTICS = "analytics"
ANALYST_ROLE = "lifecycle_analyst"
CLOSED_SCHEMAS = ("shop", "lifecycle", "logistics")  # the analyst may not even look inside
CUSTOMERS_COLUMN = "customers"                       # a published row's count of distinct customers
SAMPLES = 3
# Distinct raw values and the zone's word n-grams are hashed in memory instead of spilling (as lifecycle.sales).
WORK_MEM = "64MB"
RUN_LOG = "dagster event log"

PATTERN_PHRASES = {"email": "email addresses", "phone": "phone numbers", "street_address": "street addresses",
                   "card_number": "payment card numbers (Luhn-valid)"}
FINGERPRINT_KINDS = {"value": "raw_value", "in_text": "raw_value_in_text", "email": "raw_email",
                     "phone": "raw_phone"}


class GuardError(RuntimeError):
    """A check could not run; the message names the check and the database error, never a value."""


@dataclass(frozen=True)
class Finding:
    """One thing wrong: where, what kind, how many rows, masked samples and the fix; never a value."""

    check: str
    table: str
    column: str
    kind: str
    count: int
    samples: tuple[str, ...] = ()
    detail: str = ""

    def line(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        shown = f" [{'; '.join(self.samples)}]" if self.samples else ""
        return f"{where}: {self.kind}, {self.count} row(s){shown}" + (f": {self.detail}" if self.detail else "")


@dataclass
class CheckReport:
    """What one check looked at and what it found."""

    check: str
    findings: list[Finding] = field(default_factory=list)
    scanned: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.findings

    def description(self) -> str:
        if self.passed:
            return "no findings"
        shown = [f.line() for f in self.findings[:5]]
        more = len(self.findings) - len(shown)
        return "; ".join(shown) + (f"; and {more} more" if more else "")

    def markdown(self) -> str:
        """The findings as a table for the Dagster UI."""
        lines = ["| table | column | kind | rows | masked samples | detail |", "|---|---|---|---:|---|---|"]
        lines += [f"| {f.table} | {f.column} | {f.kind} | {f.count} | {'; '.join(f.samples)} | {f.detail} |"
                  for f in self.findings]
        return "\n".join(lines) if self.findings else "no findings"

    def metadata(self) -> dict[str, object]:
        """Counts and names only, for Dagster metadata."""
        return {"findings_count": len(self.findings), "rows_affected": sum(f.count for f in self.findings),
                "failed_on": sorted({f"{f.table}.{f.column}".rstrip(".") for f in self.findings}),
                **{f"scanned_{k}": v for k, v in self.scanned.items()}, "seconds": round(self.seconds, 3)}


@contextmanager
def _reporting(check: str) -> Iterator[CheckReport]:
    """Times the check, and turns a database error into a GuardError without statement or parameters."""
    report = CheckReport(check)
    started = time.perf_counter()
    try:
        yield report
    except sa.exc.StatementError as exc:  # its text would carry the statement and its parameters
        reason = describe_db_error(exc) if exc.orig is not None else type(exc).__name__
        raise GuardError(f"{check}: could not run ({reason})") from None
    report.seconds = time.perf_counter() - started


# ---------------------------------------------------------------- the analytics zone

@dataclass(frozen=True)
class Column:
    name: str
    type: str
    text: bool      # a string type: regexes apply directly
    castable: bool  # json, xml, arrays of text...: read as ::text


@dataclass(frozen=True)
class Relation:
    """A table, view or materialized view in the analytics zone, as found in the catalog."""

    name: str
    kind: str
    columns: tuple[Column, ...]

    @property
    def text_columns(self) -> list[Column]:
        return [c for c in self.columns if c.text or c.castable]


_RELKINDS = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view", "f": "foreign table"}
_DISCOVER = sa.text("""
    SELECT c.relname, c.relkind::text AS relkind, a.attname, format_type(a.atttypid, a.atttypmod) AS type,
           t.typcategory::text AS category, t.typname, et.typcategory::text AS element_category
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
    WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND NOT c.relispartition
    ORDER BY c.relname, a.attnum
""")


def discover(conn: Connection, schema: str = ANALYTICS) -> list[Relation]:
    """Every relation in `schema` now, with its columns and which of them hold text."""
    found: dict[str, tuple[str, list[Column]]] = {}
    for r in conn.execute(_DISCOVER, {"schema": schema}):
        _, columns = found.setdefault(r.relname, (_RELKINDS[r.relkind], []))
        if r.attname is None:
            continue
        text = r.category == "S"
        castable = not text and ((r.category == "U" and r.typname != "bytea")
                                 or r.element_category in ("S", "U"))
        columns.append(Column(r.attname, r.type, text, castable))
    return [Relation(name, kind, tuple(cols)) for name, (kind, cols) in found.items()]


@dataclass(frozen=True)
class Zone:
    """The analytics zone's relations and their estimated sizes, for the guard asset's metadata."""

    relations: list[tuple[str, str, int | None]]

    def metadata(self) -> dict[str, object]:
        return {"relation_count": len(self.relations), "relation_names": [name for name, _, _ in self.relations]}

    def markdown(self) -> str:
        lines = ["| relation | kind | rows (estimate) |", "|---|---|---:|"]
        lines += [f"| {ANALYTICS}.{name} | {kind} | {'' if rows is None else rows} |" for name, kind, rows in self.relations]
        return "\n".join(lines)


_INVENTORY = sa.text("""
    SELECT c.relname, c.relkind::text AS relkind,
           CASE WHEN c.relkind IN ('r', 'p', 'm') AND c.reltuples >= 0 THEN c.reltuples::bigint END AS estimate
    FROM pg_class c
    WHERE c.relnamespace = to_regnamespace(:schema)::oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND NOT c.relispartition
    ORDER BY c.relname
""")


def zone_inventory(engine: Engine) -> Zone:
    """What is in the analytics zone now, from the catalog (no table is read)."""
    with engine.connect() as conn:
        return Zone([(r.relname, _RELKINDS[r.relkind], r.estimate) for r in conn.execute(_INVENTORY, {"schema": ANALYTICS})])


def _q(conn_or_engine, name: str) -> str:
    """Quotes a discovered name (it did not come from the policy, so it may be anything)."""
    return conn_or_engine.dialect.identifier_preparer.quote_identifier(name)


def _rel_sql(engine, relation: str) -> str:
    return f"{_q(engine, ANALYTICS)}.{_q(engine, relation)}"


def _non_null_counts(conn: Connection, relation: str, columns: list[str]) -> dict[str, int]:
    counts = ", ".join(f"count({_q(conn, c)})" for c in columns)
    row = conn.execute(sa.text(f"SELECT {counts} FROM {_rel_sql(conn, relation)}")).one()
    return dict(zip(columns, row))


# ---------------------------------------------------------------- column names

def personal_columns(engine: Engine, policy: Policy) -> CheckReport:
    """No analytics column is named like a personal column of the policy or a personal family."""
    named = {c: spec.table for spec in policy.raw.tables().values() for c in spec.personal_columns}
    customer_id = policy.raw.orders.columns["customer_id"]
    with _reporting("no_personal_columns_in_analytics") as report, engine.connect() as conn:
        relations = discover(conn)
        report.scanned = {"relations": len(relations), "columns": sum(len(r.columns) for r in relations)}
        for relation in relations:
            flagged = {}
            for column in relation.columns:
                if column.name in named:
                    flagged[column.name] = ("policy_personal_column",
                                            f"named like {named[column.name]}.{column.name}, personal in the policy")
                elif column.name == customer_id:
                    flagged[column.name] = ("customer_id_column", f"named like {policy.raw.orders.table}.{customer_id}, "
                                            "the shop's customer id")
                elif family := patterns.column_family(column.name):
                    flagged[column.name] = (f"{family}_column", f"name belongs to the personal '{family}' family")
            if not flagged:
                continue
            counts = _non_null_counts(conn, relation.name, list(flagged))
            for column, (kind, why) in flagged.items():
                report.findings.append(Finding(
                    report.check, f"{ANALYTICS}.{relation.name}", column, kind, counts[column],
                    detail=f"{why}; drop or aggregate the column, or rename it if it holds nothing personal"))
    return report


# ---------------------------------------------------------------- value patterns (Great Expectations)

def pattern_rules(engine, relation: Relation) -> list[gx.Rule]:
    """What GX checks in one relation: each text column against every kind of personal value.

    Email and phone are GX regex expectations (one scan of the relation for all of them); card
    numbers, addresses and json/array columns are GX unexpected-row queries around the same SQL.
    """
    rules = []
    for column in relation.text_columns:
        text = f"{_q(engine, column.name)}::text"
        for kind in patterns.KINDS:
            if column.text and kind in patterns.VALUE_PATTERNS:
                rules.append(gx.Rule(column.name, kind, regex=patterns.VALUE_PATTERNS[kind]))
            else:
                rules.append(gx.Rule(column.name, kind, condition=patterns.matches_sql(kind, text)))
    return rules


def _pattern_samples(conn: Connection, key: GuardKey, relation: str, column: str, kind: str) -> tuple[str, ...]:
    """Masked forms of the first matching values, computed in SQL so no value reaches Python."""
    text = f"{_q(conn, column)}::text"
    sql = (f"SELECT length(s.v) || ' chars #' || left(encode({fingerprint.hmac_sql('s.v')}, 'hex'), 6) "
           f"FROM (SELECT {text} AS v FROM {_rel_sql(conn, relation)} "
           f"WHERE {patterns.matches_sql(kind, text)} LIMIT {SAMPLES}) s")
    return tuple(conn.execute(sa.text(sql), key.params()).scalars())


def personal_patterns(engine: Engine, key: GuardKey) -> CheckReport:
    """No text in analytics looks like an email, phone, Luhn-valid card number or street address."""
    with _reporting("no_personal_patterns_in_analytics") as report:
        with engine.connect() as conn:
            relations = discover(conn)
        report.scanned = {"relations": len(relations),
                          "text_columns": sum(len(r.text_columns) for r in relations)}
        suites = {r.name: pattern_rules(engine, r) for r in relations}
        outcomes = gx.validate(engine, ANALYTICS, suites)
        with engine.connect() as conn:
            for o in outcomes:
                if o.error:
                    what = f"{o.kind} in this column" if o.column else "the relation"
                    report.findings.append(Finding(
                        report.check, f"{ANALYTICS}.{o.relation}", o.column, "check_error", 0,
                        detail=f"Great Expectations could not check {what} ({o.error}); it stays unchecked until fixed"))
                    continue
                report.findings.append(Finding(
                    report.check, f"{ANALYTICS}.{o.relation}", o.column, o.kind, o.count,
                    _pattern_samples(conn, key, o.relation, o.column, o.kind),
                    detail=f"values look like {PATTERN_PHRASES[o.kind]}; remove or aggregate them"))
    return report


# ---------------------------------------------------------------- fingerprints

def _match_findings(check: str, matches: list[fingerprint.Match], table: str | None = None) -> list[Finding]:
    return [Finding(check, table or f"{ANALYTICS}.{m.relation}", m.column, FINGERPRINT_KINDS[m.kind], m.rows,
                    m.samples, detail="equals personal values still held in " + ", ".join(m.sources))
            for m in matches]


def raw_fingerprints(engine: Engine, policy: Policy, key: GuardKey) -> CheckReport:
    """No analytics value, nor a name, phone or email inside one, equals a personal raw value.

    Two phases in one transaction: every distinct token of the zone is hashed and joined against
    the raw zone's digests in one pass; only the columns that hit are read again to count rows.
    """
    with _reporting("no_raw_values_in_analytics") as report, engine.begin() as conn:
        conn.execute(sa.text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
        relations = discover(conn)
        fingerprint.create_candidates(conn)
        columns = {(r.name, c.name): (_rel_sql(conn, r.name), _q(conn, c.name))
                   for r in relations for c in r.text_columns}
        tokens = sum(fingerprint.add_column_candidates(conn, key, *sql, *where) for where, sql in columns.items())
        hits = fingerprint.find_hits(conn, key, policy)
        rows = {}
        for where in sorted({(h.relation, h.column) for h in hits}):
            for kind, count in fingerprint.column_hit_rows(conn, key, *columns[where], *where).items():
                rows[(*where, kind)] = count
        report.scanned = {"relations": len(relations), "text_columns": len(columns), "distinct_tokens": tokens,
                          "raw_columns": len(fingerprint.raw_sources(policy))}
        report.findings = _match_findings(report.check, fingerprint.matches(hits, rows))
    return report


# ---------------------------------------------------------------- small cells (Great Expectations)

def small_cells(engine: Engine, policy: Policy) -> CheckReport:
    """Every row of a published table (one with a `customers` count) covers at least k customers.

    A row with customers = 0 stands for no one (a week without sales) and is not a small cell.
    """
    k = policy.analytics.min_customers_per_cell
    with _reporting("published_cells_cover_k_customers") as report:
        with engine.connect() as conn:
            published = [r for r in discover(conn)
                         if any(c.name == CUSTOMERS_COLUMN and c.type in ("bigint", "integer", "smallint", "numeric")
                                for c in r.columns)]
        report.scanned = {"relations": len(published), "k": k}
        small = f"{CUSTOMERS_COLUMN} IS NULL OR ({CUSTOMERS_COLUMN} > 0 AND {CUSTOMERS_COLUMN} < {int(k)})"
        suites = {r.name: [gx.Rule(CUSTOMERS_COLUMN, "small_cell", condition=small)] for r in published}
        for o in gx.validate(engine, ANALYTICS, suites):
            detail = (f"rows cover fewer than k={k} customers (analytics.min_customers_per_cell); "
                      "fold or withhold them before publishing")
            report.findings.append(Finding(report.check, f"{ANALYTICS}.{o.relation}", o.column,
                                           "check_error" if o.error else "small_cell", o.count, detail=detail))
    return report


# ---------------------------------------------------------------- data minimisation

_TABLE_COLUMNS = sa.text("""
    SELECT a.attname FROM pg_attribute a
    WHERE a.attrelid = to_regclass(:table) AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum
""")


def minimisation(engine: Engine, policy: Policy) -> CheckReport:
    """The raw tables hold exactly the columns the policy classifies: a new column fails until named."""
    with _reporting("raw_columns_all_classified") as report, engine.connect() as conn:
        columns = 0
        for name, spec in policy.raw.tables().items():
            present = conn.execute(_TABLE_COLUMNS, {"table": spec.sql}).scalars().all()
            columns += len(present)
            if not present:
                report.findings.append(Finding(report.check, spec.table, "", "missing_table", 0, detail=(
                    f"{policy.path.name}: raw.{name}.table: not found; run `lifecycle db upgrade` or map the table")))
                continue
            classified = set(spec.columns.values()) | set(spec.personal_columns) | set(spec.kept_columns)
            unclassified = [c for c in present if c not in classified]
            if not unclassified:
                continue
            counts = conn.execute(sa.text(
                f"SELECT {', '.join(f'count({quote_ident(c)})' for c in unclassified)} FROM {spec.sql}")).one()
            for column, count in zip(unclassified, counts):
                report.findings.append(Finding(report.check, spec.table, column, "unclassified_column", count, detail=(
                    f"{policy.path.name}: raw.{name}: name it in personal_columns (the purge clears it) "
                    "or kept_columns (not personal), or drop it")))
        report.scanned = {"raw_tables": len(policy.raw.tables()), "columns": columns}
    return report


# ---------------------------------------------------------------- least privilege

_CLOSED_READABLE = sa.text("""
    SELECT n.nspname, c.relname, has_schema_privilege(n.oid, 'USAGE') AS usage,
           has_any_column_privilege(c.oid, 'SELECT') AS readable
    FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    WHERE n.nspname = ANY(:schemas)
    ORDER BY 1, 2
""")
_ANALYTICS_READABLE = sa.text("""
    SELECT count(*) FILTER (WHERE has_schema_privilege(c.relnamespace, 'USAGE')
                              AND has_table_privilege(c.oid, 'SELECT')), count(*)
    FROM pg_class c WHERE c.relnamespace = to_regnamespace(:schema)::oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
""")


def least_privilege(engine: Engine, policy: Policy, role: str = ANALYST_ROLE) -> CheckReport:
    """Acting as the analyst role, every personal raw column is refused and nothing outside analytics opens.

    Runs `SET LOCAL ROLE` in a transaction that is rolled back, and selects each personal column
    with LIMIT 0: the privilege check is real, and no value is read even if it wrongly succeeds.
    """
    with _reporting("analyst_cannot_read_personal_columns") as report, engine.connect() as conn:
        tx = conn.begin()
        try:
            if not conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar():
                report.findings.append(Finding(report.check, role, "", "missing_role", 0,
                                               detail="run `lifecycle db upgrade` (migration 0004 creates it)"))
                return report
            try:
                with conn.begin_nested():
                    conn.execute(sa.text(f"SET LOCAL ROLE {quote_ident(role)}"))
            except sa.exc.DBAPIError as exc:
                report.findings.append(Finding(report.check, role, "", "cannot_act_as_analyst", 0, detail=(
                    f"{describe_db_error(exc)}; the guard's database user must be a member: GRANT {role} TO <user>")))
                return report
            refused = 0
            for spec in policy.raw.tables().values():
                for column in spec.personal_columns:
                    try:
                        with conn.begin_nested():
                            conn.execute(sa.text(f"SELECT {quote_ident(column)} FROM {spec.sql} LIMIT 0"))
                    except sa.exc.DBAPIError as exc:
                        if getattr(exc.orig, "sqlstate", None) == "42501":
                            refused += 1
                            continue
                        raise
                    report.findings.append(Finding(report.check, spec.table, column, "personal_column_readable", 0,
                                                   detail=f"{role} can select it; revoke the grant that opens it"))
            schemas = sorted({spec.schema for spec in policy.raw.tables().values()} | set(CLOSED_SCHEMAS))
            rows = conn.execute(_CLOSED_READABLE, {"schemas": schemas}).all()
            for schema in sorted({r.nspname for r in rows if r.usage}):
                report.findings.append(Finding(report.check, schema, "", "schema_usage", 0,
                                               detail=f"{role} has USAGE on schema {schema}; revoke it"))
            for r in rows:
                if r.relname is not None and r.usage and r.readable:
                    report.findings.append(Finding(report.check, f"{r.nspname}.{r.relname}", "", "relation_readable",
                                                   0, detail=f"{role} can read it; revoke the grant"))
            readable, total = conn.execute(_ANALYTICS_READABLE, {"schema": ANALYTICS}).one()
            report.scanned = {"personal_columns_refused": refused, "analytics_relations_readable": readable,
                              "analytics_relations": total}
        finally:
            tx.rollback()
    return report


# ---------------------------------------------------------------- Dagster's run history

def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def run_log_texts(instance, run_id: str) -> Iterator[tuple[str, int, str]]:
    """(location, event number, text) for every string a run's stored events carry: messages,
    metadata, tags, error text. Read from the instance's event log storage, as compliance would."""
    import dagster as dg

    for number, entry in enumerate(instance.all_logs(run_id)):
        where = f"run {run_id[:8]} / {entry.step_key or 'run'}"
        for text in _strings(json.loads(dg.serialize_value(entry))):
            yield where, number, text


def run_history(engine: Engine, policy: Policy, key: GuardKey, instance, run_ids: list[str]) -> CheckReport:
    """No personal raw value appears in the stored Dagster events of the given runs.

    Tokens of the log text are hashed in Python with the same key and compared in SQL through
    a temp table, so the log's text never enters the database.
    """
    with _reporting("no_raw_values_in_run_history") as report, engine.begin() as conn:
        conn.execute(sa.text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
        fingerprint.create_candidates(conn)
        texts = [item for run_id in run_ids for item in run_log_texts(instance, run_id)]
        kept = fingerprint.add_text_candidates(conn, key, RUN_LOG, texts)
        hits = fingerprint.find_hits(conn, key, policy)
        rows = {(RUN_LOG, *where): n for where, n in kept.hit_rows({h.h for h in hits}).items()}
        report.scanned = {"runs": len(run_ids), "texts": len(texts),
                          "distinct_tokens": len({d for digests in kept.by_item.values() for d in digests})}
        report.findings = _match_findings(report.check, fingerprint.matches(hits, rows), table=RUN_LOG)
    return report


def nightly_runs_to_scan(instance, current_run_id: str | None = None) -> list[str]:
    """The last finished nightly run, and the current one (its events so far) when inside a run."""
    import dagster as dg

    from lifecycle.history import NIGHTLY_JOB

    finished = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=NIGHTLY_JOB, statuses=finished), limit=2)
    last = next((r.run_id for r in runs if r.run_id != current_run_id), None)
    return [r for r in (last, current_run_id) if r]


# ---------------------------------------------------------------- everything, on demand

def run_all(engine: Engine, policy: Policy, key: GuardKey, instance=None, run_ids: list[str] | None = None,
            on_check: Callable[[CheckReport], None] = lambda _: None) -> list[CheckReport]:
    """Every check in the order the nightly runs them; the run-history scan when an instance is given."""
    checks: list[Callable[[], CheckReport]] = [
        lambda: minimisation(engine, policy),
        lambda: least_privilege(engine, policy),
        lambda: personal_columns(engine, policy),
        lambda: personal_patterns(engine, key),
        lambda: raw_fingerprints(engine, policy, key),
        lambda: small_cells(engine, policy),
    ]
    if instance is not None:
        checks.append(lambda: run_history(engine, policy, key, instance,
                                          run_ids if run_ids is not None else nightly_runs_to_scan(instance)))
    reports = []
    for check in checks:
        reports.append(check())
        on_check(reports[-1])
    return reports


# ---------------------------------------------------------------- for a terminal

def status_line(report: CheckReport) -> str:
    """One line per check: its verdict and what it looked at."""
    scanned = " ".join(f"{k}={v}" for k, v in report.scanned.items())
    verdict = "passed" if report.passed else f"FAILED ({len(report.findings)})"
    return f"{report.check:<40} {verdict:<12} {report.seconds:6.2f} s  {scanned}"


def findings_table(findings: list[Finding]) -> str:
    """The findings as an aligned text table, each followed by what to do about it."""
    header = ("TABLE", "COLUMN", "KIND", "ROWS", "MASKED SAMPLES")
    rows = [(f.table, f.column or "-", f.kind, str(f.count), "; ".join(f.samples) or "-") for f in findings]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths)).rstrip()]
    for finding, row in zip(findings, rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        lines.append(f"    {finding.check}: {finding.detail}")
    return "\n".join(lines)
