"""Reading Dagster's run history back: runs as plain summaries, and the text their events carry.

The report, the alerts and the leak guard are plain functions of lifecycle/; this module turns
Dagster's run records, events and tags into what they read (lifecycle.runs.RunSummary, texts).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg

from lifecycle.runs import STATUS_WORDS, RecordedCheck, RunSummary
from orchestration import names, tags

_FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def _aware(ts: float | datetime | None) -> datetime | None:
    if ts is None:
        return None
    if isinstance(ts, datetime):
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return datetime.fromtimestamp(ts, UTC)


def _values(metadata) -> dict[str, object]:
    return {key: value.value for key, value in (metadata or {}).items()}


def _error_class(error) -> str:
    # A user-code error wraps the real one; its class name is safe to show, its message is not.
    while (
        error is not None
        and error.cause is not None
        and error.cls_name == "DagsterExecutionStepExecutionError"
    ):
        error = error.cause
    return error.cls_name if error is not None and error.cls_name else "error"


def failed_steps(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """(step, error class) of every failed step: never the error text, which may quote data."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1000
    ).records
    return [
        (
            r.event_log_entry.dagster_event.step_key or "?",
            _error_class(
                getattr(r.event_log_entry.dagster_event.event_specific_data, "error", None)
            ),
        )
        for r in records
    ]


# The figures the report reads come from these two assets' materialisations. Reading them by
# asset key (one query for a whole period) rather than every event of every run keeps the report
# from deserialising each night's hundreds of partition materialisations (12 s → under 3 s).
_FIGURE_ASSETS = (names.DUE_ORDERS, names.ERASED_STORAGE)


def _materializations_since(
    instance: dg.DagsterInstance, since: datetime
) -> dict[str, dict[str, dict[str, object]]]:
    """run id → asset → metadata of the figure assets' unpartitioned materialisations since `since`."""
    found: dict[str, dict[str, dict[str, object]]] = {}
    for asset in _FIGURE_ASSETS:
        cursor = None
        while True:
            page = instance.fetch_materializations(
                dg.AssetRecordsFilter(
                    asset_key=dg.AssetKey.from_user_string(asset),
                    after_timestamp=since.timestamp(),
                ),
                limit=1000,
                cursor=cursor,
                ascending=True,
            )
            for record in page.records:
                mat = record.asset_materialization
                if mat is not None and mat.partition is None:
                    found.setdefault(record.run_id, {})[asset] = _values(mat.metadata)
            if not page.has_more:
                break
            cursor = page.cursor
    return found


def _summarize(
    instance: dg.DagsterInstance,
    record,
    materializations: dict[str, dict[str, object]] | None = None,
) -> RunSummary:
    run = record.dagster_run
    if materializations is None:
        materializations = _materializations_since(instance, _aware(record.create_timestamp)).get(
            run.run_id, {}
        )
    checks: list[RecordedCheck] = []
    for event in instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000
    ).records:
        check = event.event_log_entry.dagster_event.event_specific_data
        checks.append(
            RecordedCheck(
                name=check.check_name,
                passed=check.passed,
                asset=check.asset_key.to_user_string(),
                figures=_values(check.metadata),
            )
        )
    due = materializations.get(names.DUE_ORDERS, {})
    erased = materializations.get(names.ERASED_STORAGE)
    overdue = [c.figures.get("overdue_orders") for c in checks if c.name == names.OVERDUE_CHECK]
    status = STATUS_WORDS.get(run.status.value, run.status.value.lower())
    return RunSummary(
        run_id=run.run_id,
        status=status,
        created_at=_aware(record.create_timestamp),
        finished_at=_aware(record.end_time),
        trigger=tags.trigger_of(run.tags),
        policy_version=run.tags.get(tags.TAG_POLICY_VERSION),
        policy_hash=run.tags.get(tags.TAG_POLICY_HASH),
        policy_problem=run.tags.get(tags.TAG_POLICY_PROBLEM),
        kept_by_open_case=due.get("kept_by_open_case"),
        anomalies=due.get("anomalies"),
        overdue_after=overdue[-1] if overdue else None,
        erasure_ran=None if erased is None else bool(erased.get("ran")),
        checks=checks,
        failed_steps=failed_steps(instance, run.run_id) if status == "failed" else [],
    )


def job_runs(
    instance: dg.DagsterInstance, since: datetime, job: str = names.NIGHTLY_JOB
) -> list[RunSummary]:
    """Every run of `job` created since `since`, oldest first, with what its steps reported."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job, created_after=since),
        order_by="create_timestamp",
        ascending=True,
    )
    figures = _materializations_since(instance, since)
    return [_summarize(instance, r, figures.get(r.dagster_run.run_id, {})) for r in records]


def run_summary(instance: dg.DagsterInstance, run_id: str) -> RunSummary | None:
    """One run by id; None when the history lacks it."""
    record = instance.get_run_record_by_id(run_id)
    return _summarize(instance, record) if record else None


def first_run_at(instance: dg.DagsterInstance, job: str = names.NIGHTLY_JOB) -> datetime | None:
    """When the history's first run of `job` was created: nothing before it was recorded."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job), limit=1, order_by="create_timestamp", ascending=True
    )
    return _aware(records[0].create_timestamp) if records else None


def last_success(instance: dg.DagsterInstance, job: str = names.NIGHTLY_JOB) -> RunSummary | None:
    """The newest successful run of `job`, or None when it never succeeded."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS]),
        limit=1,
        order_by="update_timestamp",
    )
    return _summarize(instance, records[0]) if records else None


def run_created_at(instance: dg.DagsterInstance, run_id: str) -> datetime:
    """When a run was created: the instant every step of a night judges dueness at."""
    record = instance.get_run_record_by_id(run_id)
    return _aware(record.create_timestamp) if record else datetime.now(UTC)


# ---------------------------------------------------------------- the text a run's events carry


def stored_strings(parsed) -> Iterator[str]:
    """Every string of a value Dagster stores, already parsed from its serialized form."""
    if isinstance(parsed, str):
        yield parsed
    elif isinstance(parsed, dict):
        for item in parsed.values():
            yield from stored_strings(item)
    elif isinstance(parsed, list):
        for item in parsed:
            yield from stored_strings(item)


# Fields of a stored event that hold names the project's code gave (its job, steps, ops, assets,
# checks, metadata labels and table columns), never a value a step computed.
NAME_FIELDS = {"label", "step_key", "job_name", "pipeline_name", "op_name", "check_name"}
NAMED_CLASSES = {"SolidHandle", "NodeHandle", "AssetCheckKey", "TableColumn", "StepHandle"}


def recorded_names(value) -> Iterator[str]:
    """The names a stored event records in its structural fields (NAME_FIELDS; `name` and `key` of
    NAMED_CLASSES; an AssetKey's path), as parsed from its serialized form: what the guard may cut
    out of the run log as the project's own words (lifecycle/guard/provenance.py, own names).
    Only fields of Dagster's own classes count: a plain dict is data (a table row's cells), and a
    cell under a key named like a field (`label`) is a value, never a name."""
    if isinstance(value, dict):
        cls = value.get("__class__")
        for field, item in value.items():
            if (
                isinstance(item, str)
                and cls is not None
                and (field in NAME_FIELDS or (cls in NAMED_CLASSES and field in ("name", "key")))
            ):
                yield item
            elif cls == "AssetKey" and field == "path" and isinstance(item, list):
                yield from (part for part in item if isinstance(part, str))
            else:
                yield from recorded_names(item)
    elif isinstance(value, list):
        for item in value:
            yield from recorded_names(item)


def run_log_texts(
    instance: dg.DagsterInstance, run_ids: list[str]
) -> Iterator[tuple[str, int, str]]:
    """(location, event number, text) for every string the runs' stored events carry: messages,
    metadata, tags, error text. Read from the instance's event log storage, as compliance would."""
    for run_id in run_ids:
        for number, entry in enumerate(instance.all_logs(run_id)):
            where = f"run {run_id[:8]} / {entry.step_key or 'run'}"
            for text in entry_texts(entry):
                yield where, number, text


def entry_texts(entry) -> Iterator[str]:
    """Every string one stored event carries: message, metadata, tags, error text."""
    return stored_texts(entry)


def stored_texts(value) -> Iterator[str]:
    """Every string a value Dagster stores (an event, a metadata value) carries, as stored: each
    one a text of its own for the guard (a table's cells one by one)."""
    return stored_strings(json.loads(dg.serialize_value(value)))


def nightly_runs_to_scan(
    instance: dg.DagsterInstance, current_run_id: str | None = None
) -> list[str]:
    """The last finished nightly run, and the current one (its events so far) when inside a run."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(job_name=names.NIGHTLY_JOB, statuses=_FINISHED), limit=2
    )
    last = next((r.run_id for r in runs if r.run_id != current_run_id), None)
    return [r for r in (last, current_run_id) if r]
