"""Audited exceptions to the leak guard: a finding someone has looked at and accepted, for a while.

The guard is fail-closed, so a finding that is not personal data after all (a column of product
codes one pattern mistakes for phones) would fail every night until someone turned the guard off.
Instead the policy names the column and the kind of finding it accepts, why, and until when. An
accepted finding is still counted and shown (check metadata, the compliance report); it just does
not fail the check, and from the day after `expires` it fails again.
"""

from __future__ import annotations

from datetime import date

from pydantic import Field, field_validator

from lifecycle.policy.base import Strict

NOT_ACCEPTABLE = ("check_error",)  # a check that could not run proved nothing: never accepted


class AcceptedFinding(Strict):
    """One accepted finding: where (table and column as the finding names them), what kind, why,
    and the last day it is accepted."""

    table: str = Field(min_length=1)
    column: str = ""
    kind: str = Field(min_length=1)
    reason: str = Field(min_length=10)
    expires: date

    @field_validator("kind")
    @classmethod
    def _acceptable(cls, value: str) -> str:
        if value in NOT_ACCEPTABLE:
            raise ValueError(
                f"a {value} finding cannot be accepted: the check did not run; fix the relation"
            )
        return value

    def covers(self, table: str, column: str, kind: str) -> bool:
        """Whether a finding at (table, column) of `kind` is the one this names."""
        return (self.table, self.column, self.kind) == (table, column, kind)


class Guard(Strict):
    """The leak guard's settings: the findings accepted for now, and how often the nightly reads
    the whole analytics zone rather than only what changed (lifecycle.guard.changes)."""

    accepted_findings: tuple[AcceptedFinding, ...] = ()
    full_scan_every_days: int = Field(default=7, ge=1, le=31)
