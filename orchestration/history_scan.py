"""The leak guard's run-history check: its scan reads Dagster's instance, so it lives here and is
imported only where an instance is open (the nightly's asset check, `lifecycle guard`)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
from sqlalchemy.engine import Engine

from lifecycle.checks import CheckResult
from lifecycle.guard import positions, run_log
from lifecycle.guard.checks import RUN_HISTORY_ASSERTS, RUN_HISTORY_CHECK, GuardCheck
from lifecycle.guard.key import GuardKey
from lifecycle.guard.scan import scan as scan_of_a_check
from lifecycle.policy import Policy
from orchestration.history_since import history_since, read

RUN_LOG = "dagster event log"  # how a run-history finding names the table it was found in


def run_history_check(
    instance: dg.DagsterInstance,
    run_ids: list[str] | None = None,
    current_run_id: str | None = None,
) -> GuardCheck:
    """The run-history check in the shape of GUARD_CHECKS: over the stored events and compute logs
    of `run_ids` whole, or (None) incrementally, of what was written since the last clean scan,
    whose positions it saves when it passes."""

    @scan_of_a_check
    def scan(
        engine: Engine, policy: Policy, key: GuardKey, reader: Engine | None = None
    ) -> CheckResult:
        if run_ids is not None:
            new = read(instance, run_ids, {})
        else:
            last = positions.last_scanned_at(engine, positions.RUN_HISTORY)
            new = history_since(
                instance,
                last,
                lambda ids: positions.positions(engine, positions.RUN_HISTORY, ids),
                current_run_id,
            )
        started = datetime.now(UTC)
        result = run_log.raw_values_in_run_log(engine, policy, key, new.texts, log=RUN_LOG)
        result.scanned = {"runs": len(new.run_ids), "events": new.events, **result.scanned}
        if run_ids is None and result.passed and new.reached:
            positions.save(engine, positions.RUN_HISTORY, new.reached, started)
        return result

    return GuardCheck(RUN_HISTORY_CHECK, RUN_HISTORY_ASSERTS, scan)
