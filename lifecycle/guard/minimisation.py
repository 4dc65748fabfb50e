"""Data minimisation: the raw tables hold exactly the columns the policy classifies, so a column
added to the shop is neither purged nor guarded by accident: it fails until the policy names it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.checks import CheckResult, Finding
from lifecycle.guard.scan import scan
from lifecycle.policy import Policy, quote_ident

_TABLE_COLUMNS = sa.text("""
    SELECT a.attname FROM pg_attribute a
    WHERE a.attrelid = to_regclass(:table) AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum
""")


@scan
def unclassified_raw_columns(engine: Engine, policy: Policy) -> CheckResult:
    """The raw tables hold exactly the columns the policy classifies: a new column fails until
    named."""
    result = CheckResult()
    columns = 0
    file = policy.path.name
    with engine.connect() as conn:
        for name, spec in policy.raw.tables().items():
            present = conn.execute(_TABLE_COLUMNS, {"table": spec.sql}).scalars().all()
            columns += len(present)
            if not present:
                result.findings.append(
                    Finding(
                        spec.table,
                        "",
                        "missing_table",
                        0,
                        detail=(
                            f"{file}: raw.{name}.table: not found; run `lifecycle db upgrade` or map the "
                            "table"
                        ),
                    )
                )
                continue
            classified = {*spec.columns.values(), *spec.personal_columns, *spec.kept_columns}
            unclassified = [c for c in present if c not in classified]
            if not unclassified:
                continue
            counted = ", ".join(f"count({quote_ident(c)})" for c in unclassified)
            counts = conn.execute(sa.text(f"SELECT {counted} FROM {spec.sql}")).one()
            for column, count in zip(unclassified, counts, strict=True):
                result.findings.append(
                    Finding(
                        spec.table,
                        column,
                        "unclassified_column",
                        count,
                        detail=(
                            f"{file}: raw.{name}: name it in personal_columns (the purge clears it) "
                            "or kept_columns (not personal), or drop it"
                        ),
                    )
                )
    result.scanned = {"raw_tables": len(policy.raw.tables()), "columns": columns}
    return result
