"""The leak guard's run-history check: its scan reads Dagster's instance, so it lives here and is
imported only where an instance is open (the nightly's asset check, `lifecycle guard`)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.checks import CheckResult
from lifecycle.guard import accepted, positions, raw_values, run_log
from lifecycle.guard.checks import (
    GUARD_CHECKS,
    RAW_VALUES_CHECK,
    RUN_HISTORY_ASSERTS,
    RUN_HISTORY_CHECK,
    GuardCheck,
)
from lifecycle.guard.key import GuardKey
from lifecycle.guard.provenance import Provenance, recorded_hashes
from lifecycle.guard.scan import scan as scan_of_a_check
from lifecycle.guard.zone import ANALYTICS
from lifecycle.policy import Policy
from orchestration.history_since import NewHistory, history_since, provenance, read
from orchestration.step_tail import StepTail

RUN_LOG = "dagster event log"  # how a run-history finding names the table it was found in


def _new_history(
    instance: dg.DagsterInstance,
    engine: Engine,
    run_ids: list[str] | None,
    current_run_id: str | None,
) -> NewHistory:
    """The texts to read: of `run_ids` whole, or (None) what was written since the last clean scan."""
    if run_ids is not None:
        return read(instance, run_ids, {})
    last = positions.last_scanned_at(engine, positions.RUN_HISTORY)
    return history_since(
        instance,
        last,
        lambda ids: positions.positions(engine, positions.RUN_HISTORY, ids),
        current_run_id,
    )


def _finish(
    engine: Engine, result: CheckResult, new: NewHistory, started: datetime, incremental: bool
) -> CheckResult:
    """The run-history result with what was read, its positions saved when it passed clean."""
    result.scanned = {"runs": len(new.run_ids), "events": new.events, **result.scanned}
    if incremental and result.passed and new.reached:
        positions.save(engine, positions.RUN_HISTORY, new.reached, started)
    return result


_ZONE_NAMES = sa.text(
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :schema"
)


def own_names(engine: Engine, policy: Policy, new: NewHistory) -> frozenset[str]:
    """The project's own names a run log may quote (lifecycle.guard.provenance, own names): those
    the events read record in their structural fields, the analytics zone's relation names and
    the policy's time zone. Names, never values: none is read from a row."""
    with engine.connect() as conn:
        zone = set(conn.execute(_ZONE_NAMES, {"schema": ANALYTICS}).scalars())
    return frozenset({*new.names, *zone, policy.analytics.timezone})


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
        new = _new_history(instance, engine, run_ids, current_run_id)
        started = datetime.now(UTC)
        result = run_log.raw_values_in_run_log(
            engine, policy, key, new.texts, log=RUN_LOG, own_names=own_names(engine, policy, new)
        )
        return _finish(engine, result, new, started, run_ids is None)

    return GuardCheck(RUN_HISTORY_CHECK, RUN_HISTORY_ASSERTS, scan)


def raw_values_in_zone_and_run_history(
    instance: dg.DagsterInstance,
    current_run_id: str,
    engine: Engine,
    policy: Policy,
    key: GuardKey,
    reader: Engine | None,
    today: date,
    tail: StepTail | None = None,
) -> tuple[CheckResult, CheckResult]:
    """The night's two raw-value checks, `no_raw_values_in_analytics` and
    `no_raw_values_in_run_history`, from one pass over the raw zone (raw_values_in_zone_and_log),
    each with the findings the policy accepts applied as its own check applies them. The history
    is read first; if it cannot be, the zone is still compared alone and the history's check fails
    with the reason. `tail`: the events Dagster will write after this step, compared beside the
    history (orchestration/step_tail.py)."""
    zone_check = next(c for c in GUARD_CHECKS if c.name == RAW_VALUES_CHECK)
    history = run_history_check(instance, current_run_id=current_run_id)
    try:
        new = _new_history(instance, engine, None, current_run_id)
    except Exception:  # noqa: BLE001 - the history's check fails with the reason; the zone's runs
        return (
            zone_check.run(engine, policy, key, reader, today),
            history.run(engine, policy, key, reader, today),
        )
    started = datetime.now(UTC)
    run_ids, versions, log_keys = provenance(instance, new)
    with engine.connect() as conn:
        hashes = recorded_hashes(conn, new.texts) | versions
    explained = Provenance(
        frozenset(run_ids),
        frozenset(hashes),
        frozenset(log_keys),
        own_names(engine, policy, new),
    )
    zone, from_log = raw_values.raw_values_in_zone_and_log(
        engine, policy, key, reader, new.texts, RUN_LOG, explained, tail.texts() if tail else ()
    )
    from_log = _finish(engine, from_log, new, started, True)
    accepted_findings = policy.guard.accepted_findings
    return accepted.apply(zone, accepted_findings, today), accepted.apply(
        from_log, accepted_findings, today
    )
