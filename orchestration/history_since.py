"""The run history written since the guard's last clean scan: the events (and compute logs) of the
runs updated since then, after each run's last scanned event. An unchanged night reads nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import dagster as dg
from dagster._core.storage.event_log.base import EventLogCursor

from lifecycle.guard.provenance import UUID_SPAN
from orchestration.compute_logs import compute_log_files, compute_log_texts
from orchestration.history import nightly_runs_to_scan, recorded_names, stored_strings

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
    # Data versions Dagster computed (not a step's own) in the materializations read, and the
    # upstream versions those name: (asset key, version).
    data_versions: set[str] = field(default_factory=set)
    input_versions: set[tuple[str, str]] = field(default_factory=set)
    # The compute-log keys Dagster recorded in the LOGS_CAPTURED events read (an instance whose
    # compute log manager keeps no files, as an ephemeral one, has no other record of them).
    log_keys: set[str] = field(default_factory=set)
    # The names the events record in their structural fields (orchestration.history.recorded_names).
    names: set[str] = field(default_factory=set)


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
            _note_data_versions(new, entry)
            _note_log_key(new, entry)
            where = f"run {run_id[:8]} / {entry.step_key or 'run'}"
            stored = json.loads(dg.serialize_value(entry))
            new.names.update(recorded_names(stored))
            new.texts += [(where, record.storage_id, text) for text in stored_strings(stored)]
        new.reached[run_id] = high
        if high > floor:
            changed.append(run_id)
    new.texts += list(compute_log_texts(instance, changed))
    return new


_DATA_VERSION = "dagster/data_version"
_USER_PROVIDED = "dagster/data_version_is_user_provided"
_INPUT_VERSION = "dagster/input_data_version/"


def _versions_of(entry) -> tuple[str | None, dict[str, str]]:
    """A materialization's data version when Dagster computed it (None when a step provided its
    own), and the upstream versions it names by asset key."""
    event = entry.dagster_event
    if event is None or not event.is_step_materialization:
        return None, {}
    tags = event.step_materialization_data.materialization.tags or {}
    own = None if tags.get(_USER_PROVIDED) == "true" else tags.get(_DATA_VERSION)
    inputs = {
        k.removeprefix(_INPUT_VERSION): v for k, v in tags.items() if k.startswith(_INPUT_VERSION)
    }
    return own, inputs


def _note_log_key(new: NewHistory, entry) -> None:
    event = entry.dagster_event
    if event is not None and event.event_type == dg.DagsterEventType.LOGS_CAPTURED:
        new.log_keys.add(event.logs_captured_data.file_key)


def _note_data_versions(new: NewHistory, entry) -> None:
    own, inputs = _versions_of(entry)
    if own:
        new.data_versions.add(own)
    new.input_versions.update(inputs.items())


def provenance(instance: dg.DagsterInstance, new: NewHistory) -> tuple[set, set, set]:
    """What of `new`'s texts Dagster wrote, each confirmed against the instance's own records:
    the run ids that name runs of this instance, the data versions Dagster computed (in the
    events read, or an upstream's among its latest materializations), and the compute-log keys
    of the runs read (their files' names, and the keys their LOGS_CAPTURED events record). See
    lifecycle/guard/provenance.py."""
    mentioned = {m.group(0) for _, _, text in new.texts for m in UUID_SPAN.finditer(text)}
    run_ids = set(new.run_ids)
    if mentioned - run_ids:
        found = instance.get_run_ids(filters=dg.RunsFilter(run_ids=sorted(mentioned - run_ids)))
        run_ids.update(found)
    versions = set(new.data_versions)
    for key in sorted({k for k, v in new.input_versions if v not in versions}):
        records = instance.fetch_materializations(dg.AssetKey.from_user_string(key), limit=3)
        for record in records.records:
            own, _ = _versions_of(record.event_log_entry)
            if own:
                versions.add(own)
    keys = {p.stem for run_id in new.run_ids for p in compute_log_files(instance, run_id)}
    return run_ids, versions, keys | new.log_keys
