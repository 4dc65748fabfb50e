"""Before the purge writes anything: the policy's personal columns must cover every column of the
raw zone that is personal, or the purge would mark orders cleared while keeping values.

Two sources say what is personal: the reference contract (`DEFAULT_PERSONAL`, the columns the
reference schema defines as personal, wherever a shop's table has them) and the guard's data
minimisation check, which finds every raw column the policy does not classify at all. Either
kind of gap refuses the run with one line naming the file, the field, the column and the fix.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.guard.minimisation import unclassified_raw_columns
from lifecycle.policy import Policy
from lifecycle.policy.raw import DEFAULT_PERSONAL

SHOWN = 3


class PolicyCoverageError(RuntimeError):
    """The policy leaves a personal column of the raw zone out; nothing was written."""


def _contract_gaps(engine: Engine, policy: Policy) -> list[str]:
    gaps = []
    file = policy.path.name
    with engine.connect() as conn:
        for name, spec in policy.raw.tables().items():
            present = set(
                conn.execute(
                    sa.text("""SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t)
                               AND attnum > 0 AND NOT attisdropped"""),
                    {"t": spec.sql},
                ).scalars()
            )
            for column in DEFAULT_PERSONAL[name]:
                if column in present and column not in spec.personal_columns:
                    gaps.append(
                        f"{file}: raw.{name}.personal_columns: column '{column}' of {spec.table} is "
                        "personal (reference contract) but not listed; add it"
                    )
    return gaps


def require_personal_coverage(engine: Engine, policy: Policy, refused: str = "purge") -> None:
    """Raises PolicyCoverageError (one line) unless every personal raw column is in the policy's
    personal_columns; reads only the catalog, and counts rows only of unclassified columns.
    `refused` names what was refused: the nightly purge, or a request's erasure."""
    gaps = _contract_gaps(engine, policy)
    minimisation = unclassified_raw_columns(engine, policy)
    if minimisation.error:
        gaps.append(f"the raw zone could not be checked ({minimisation.error})")
    gaps += [
        f"{f.where}: {f.kind}: {f.detail}"
        for f in minimisation.findings
        if not any(f"'{f.column}' of {f.table} " in g for g in gaps)
    ]
    if gaps:
        more = f" (and {len(gaps) - SHOWN} more)" if len(gaps) > SHOWN else ""
        raise PolicyCoverageError(
            f"{refused} refused, nothing written: " + "; ".join(gaps[:SHOWN]) + more
        )
