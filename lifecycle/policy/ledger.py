"""How the nightly verifies the hash-chained audit trail (lifecycle/ledger, docs/compliance.md)."""

from __future__ import annotations

from pydantic import Field

from lifecycle.policy.base import Strict


class Ledger(Strict):
    """The nightly check re-hashes only the links written since its last seal and proves the
    sealed rows untouched through SQL with one cheap pass; once `full_verify_every_days` have
    passed since a chain was last re-hashed in full, it re-hashes every link again, which also
    finds what the cheap pass cannot (a data file edited in place). The same rhythm as the guard's
    weekly full scan (`guard.full_scan_every_days`)."""

    full_verify_every_days: int = Field(default=7, ge=1, le=31)
