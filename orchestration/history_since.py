"""The run history written since the guard's last clean scan: the events (and compute logs) of the
runs updated since then, after each run's last scanned event. An unchanged night reads nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import dagster as dg
from dagster._core.storage.event_log.base import EventLogCursor

from orchestration.compute_logs import compute_log_texts
from orchestration.history import entry_texts, nightly_runs_to_scan

# Runs whose last update came a little before the last scan are read again (their events past
# the stored position only): clocks of the webserver, daemon and database may disagree.
SLACK = timedelta(hours=1)


@dataclass
class NewHistory:
    """Texts of the events written after each run's position, and where each run now stands."""

    run_ids: list[str]
    texts: list[tuple[str, int, str]] = field(default_factory=list)
    events: int = 0
    reached: dict[str, int] = field(default_factory=dict)


def history_since(
    instance: dg.DagsterInstance,
    last_scan: datetime | None,
    positions_of: Callable[[list[str]], dict[str, int]],
    current_run_id: str | None = None,
) -> NewHistory:
    """What the runs updated since `last_scan` wrote after their positions (`positions_of` the
    runs); before any clean scan, the last finished nightly run and the current one, whole."""
    if last_scan is None:
        run_ids = nightly_runs_to_scan(instance, current_run_id)
    else:
        runs = instance.get_runs(filters=dg.RunsFilter(updated_after=last_scan - SLACK))
        run_ids = [r.run_id for r in runs]
        if current_run_id and current_run_id not in run_ids:
            run_ids.append(current_run_id)
    return read(instance, run_ids, positions_of(run_ids))


def read(instance: dg.DagsterInstance, run_ids: list[str], positions: dict[str, int]) -> NewHistory:
    """The events of `run_ids` after their positions, and the compute logs of those with any."""
    new = NewHistory(run_ids)
    changed = []
    for run_id in run_ids:
        floor = positions.get(run_id, 0)
        high = floor
        new.reached[run_id] = floor
        # The newest record first: a run with nothing past its position is not read (its
        # hundreds of events would be deserialised only to be skipped).
        newest = instance.get_records_for_run(run_id, limit=1, ascending=False).records
        if not newest or newest[0].storage_id <= floor:
            continue
        # Only the events past the position are fetched and deserialised (an id cursor is a
        # `WHERE id > floor` on the event log's primary key): a run the last scan saw half of
        # costs its new events, not all of them.
        cursor = EventLogCursor.from_storage_id(floor).to_string() if floor else None
        for record in instance.get_records_for_run(run_id, cursor=cursor).records:
            if record.storage_id <= floor:
                continue
            high = max(high, record.storage_id)
            new.events += 1
            entry = record.event_log_entry
            where = f"run {run_id[:8]} / {entry.step_key or 'run'}"
            new.texts += [(where, record.storage_id, text) for text in entry_texts(entry)]
        new.reached[run_id] = high
        if high > floor:
            changed.append(run_id)
    new.texts += list(compute_log_texts(instance, changed))
    return new
