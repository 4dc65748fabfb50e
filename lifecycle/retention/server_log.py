"""Whether PostgreSQL's own server log would keep personal values: a copy the project cannot remove.

The server writes its log outside the database, so no purge or rewrite reaches it; only the DBA's
settings keep values out of it. With them at their defaults the server logs every failing
statement's text (`log_min_error_statement = error`), and settings a DBA may turn on log statements
with their bound parameters (`log_statement = mod|all`, `log_min_duration_statement`, sampling,
`log_parameter_max_length[_on_error]`). Each such setting, read with `pg_settings` as the job's
connection sees it (database- and role-level settings included), is a finding naming the setting and
what to set instead (docs/retention.md, "PostgreSQL's server log"). The check only warns: the
project cannot change the server, and a DBA may accept the log with its own retention.

The error message itself (PostgreSQL's primary message can quote the value a cast refused) is logged
at `log_min_messages` levels up to `error`; that is noted in the finding's figures, not a finding,
since turning error messages off costs a DBA every diagnosis.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle import db
from lifecycle.checks import CheckResult, Finding

TABLE = "server log"  # how a finding names where the values would land
# What a DBA sets (postgresql.conf, or ALTER DATABASE/ROLE ... SET) so the check passes.
RECOMMENDED = db.PRIVATE_LOG_SETTINGS

_SETTINGS = sa.text("""
    SELECT name, setting FROM pg_settings
    WHERE name IN ('log_min_error_statement', 'log_parameter_max_length_on_error',
                   'log_statement', 'log_min_duration_statement', 'log_parameter_max_length',
                   'log_min_duration_sample', 'log_statement_sample_rate',
                   'log_transaction_sample_rate', 'log_min_messages')
""")
# Severity levels in PostgreSQL's order: a statement failing with ERROR is logged with its text
# when log_min_error_statement is at or below `error`.
_LEVELS = ("debug5 debug4 debug3 debug2 debug1 info notice warning error log fatal panic").split()
_LOGS_ERRORS = set(_LEVELS[: _LEVELS.index("error") + 1])


def server_log_settings(engine: Engine) -> CheckResult:
    """Findings for each server setting that would write statements' text or parameters to the
    server log, as this connection's database and role see them."""
    with engine.connect() as conn:
        s = dict(conn.execute(_SETTINGS).all())
    findings = []

    def finding(setting: str, what: str, fix: str) -> None:
        findings.append(Finding(TABLE, setting, what, 1, detail=f"set {fix} (docs/retention.md)"))

    failing_text = s.get("log_min_error_statement") in _LOGS_ERRORS
    if failing_text:
        finding(
            "log_min_error_statement",
            f"'{s['log_min_error_statement']}' logs the text of every failing statement",
            "log_min_error_statement = panic",
        )
    if failing_text and s.get("log_parameter_max_length_on_error", "0") != "0":
        finding(
            "log_parameter_max_length_on_error",
            "failing statements are logged with their parameters",
            "log_parameter_max_length_on_error = 0",
        )
    statements = []  # settings that log statements which did not fail
    if s.get("log_statement") in ("mod", "all"):
        statements.append("log_statement")
        finding(
            "log_statement",
            f"'{s['log_statement']}' logs the text of data-changing statements",
            "log_statement = none (or ddl)",
        )
    if s.get("log_min_duration_statement", "-1") != "-1":
        statements.append("log_min_duration_statement")
        finding(
            "log_min_duration_statement",
            "slow statements are logged with their text",
            "log_min_duration_statement = -1 (or log durations only: log_duration = on)",
        )
    sampled = s.get("log_min_duration_sample", "-1") != "-1" and _positive(
        s.get("log_statement_sample_rate")
    )
    if sampled or _positive(s.get("log_transaction_sample_rate")):
        statements.append("sampling")
        finding(
            "log_min_duration_sample" if sampled else "log_transaction_sample_rate",
            "sampled statements are logged with their text",
            "log_min_duration_sample = -1 and log_transaction_sample_rate = 0",
        )
    if statements and s.get("log_parameter_max_length", "-1") != "0":
        finding(
            "log_parameter_max_length",
            "statements logged by " + ", ".join(statements) + " carry their bound parameters",
            "log_parameter_max_length = 0",
        )
    return CheckResult(
        findings=findings,
        scanned={"settings": len(s)},
        figures={"error_messages_logged": s.get("log_min_messages") in _LOGS_ERRORS},
    )


def _positive(value: str | None) -> bool:
    try:
        return float(value or 0) > 0
    except ValueError:
        return False
