"""How long the orchestrator's own record (runs, their events and compute logs) is kept."""

from __future__ import annotations

from pydantic import Field

from lifecycle.policy.base import Strict


class RunHistory(Strict):
    """The run history holds ids and figures too, so it has a retention of its own (docs/compliance.md).

    400 days cover a yearly audit with a month to spare; each night's figures the report needs are
    first kept in lifecycle.nightly_summaries, so the report still covers any period.
    """

    keep_days: int = Field(400, ge=31, le=3650)
