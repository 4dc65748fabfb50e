"""Dagster's run history: where it is kept, what every run carries, and reading it back.

The run history is the compliance record, so it lives in PostgreSQL (dagster-postgres) rather
than Dagster's default SQLite files: on the shop's server in a database of its own (`dagster`)
unless LIFECYCLE_DAGSTER_STORAGE_URL names another. The CLI, `make ui` and the tests all write
DAGSTER_HOME/dagster.yaml through `write_instance_config`, so every process reads one history.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import URL

from lifecycle import db
from lifecycle.policy import Policy, PolicyError, load_policy
from lifecycle.settings import Settings

DAGSTER_DATABASE = "dagster"
NIGHTLY_JOB = "nightly_lifecycle"

TAG_TRIGGER = "lifecycle/trigger"
TAG_POLICY_VERSION = "lifecycle/policy_version"
TAG_POLICY_HASH = "lifecycle/policy_hash"
TAG_POLICY_PROBLEM = "lifecycle/policy_problem"
TRIGGERS = ("schedule", "sensor", "cli", "demo", "hand")

_MARKER = "# Written by lifecycle (lifecycle/history.py)"
_HEADER = f"""{_MARKER} from LIFECYCLE_DAGSTER_STORAGE_URL, else the shop's server.
# Rewritten by every `lifecycle` command and `make ui`; to keep your own file, delete the first line.
"""


class HistoryError(RuntimeError):
    """The run history's storage cannot be reached or created; the message says what to set."""


# ---------------------------------------------------------------- where the history lives

def storage_url(settings: Settings) -> URL:
    """PostgreSQL URL of Dagster's run, event-log and schedule storage (psycopg2 spelling).

    LIFECYCLE_DAGSTER_STORAGE_URL when set (the database must exist); otherwise a database
    `dagster` on the shop's server, created on first use.
    """
    if settings.dagster_storage_url:
        url = db.normalise_url(settings.dagster_storage_url)
    else:
        shop = db.resolve_url(settings)
        try:
            db.ensure_database(shop, DAGSTER_DATABASE)
        except sa.exc.DBAPIError as exc:
            raise HistoryError(
                f"could not create database '{DAGSTER_DATABASE}' for the run history on "
                f"{db.safe_url(shop)}: {db.describe_db_error(exc)}; create it, or set "
                "LIFECYCLE_DAGSTER_STORAGE_URL to a PostgreSQL database lifecycle may use"
            ) from None
        url = shop.set(database=DAGSTER_DATABASE)
    # dagster-postgres is written for psycopg2 (NOTIFY with a bound channel payload), and
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, so the driver is named.
    return url.set(drivername="postgresql+psycopg2")


def instance_config(url: URL) -> dict:
    """The dagster.yaml mapping: all three storages in PostgreSQL, no telemetry."""
    return {
        "storage": {"postgres": {"postgres_url": url.render_as_string(hide_password=False)}},
        "telemetry": {"enabled": False},
    }


def write_instance_config(settings: Settings) -> Path:
    """Writes DAGSTER_HOME/dagster.yaml for `settings` and returns DAGSTER_HOME.

    A dagster.yaml written by someone else is left alone. The file is replaced atomically
    (a running webserver never reads half of it) and is readable by its owner only, since a
    URL may carry a password (prefer ~/.pgpass, which psycopg2 reads, to keep it out).
    """
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    if path.exists() and not path.read_text(encoding="utf-8").startswith(_MARKER):
        return home
    text = _HEADER + yaml.safe_dump(instance_config(storage_url(settings)), sort_keys=False)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return home
    fd, tmp = tempfile.mkstemp(dir=home, prefix=".dagster.yaml.")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return home


def open_instance(settings: Settings) -> dg.DagsterInstance:
    """The Dagster instance the settings describe, its dagster.yaml written first."""
    home = write_instance_config(settings)
    # dagster-postgres retries a failed connection for a quarter of a minute and then reports
    # only "too many retries"; one probe first says at once what is wrong.
    url = storage_url(settings)
    probe = sa.create_engine(db.normalise_url(url), poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5})
    try:
        with probe.connect():
            pass
    except sa.exc.OperationalError as exc:
        # A connection error has no SQLSTATE detail; libpq's own line (server, database, role) does.
        reason = str(exc.orig).strip().splitlines()[0].rsplit("FATAL:", 1)[-1].strip()
        raise HistoryError(
            f"could not open the run history at {db.safe_url(url)}: {reason}; "
            "check LIFECYCLE_DAGSTER_STORAGE_URL (the database must exist)"
        ) from None
    finally:
        probe.dispose()
    return dg.DagsterInstance.from_config(str(home))


# ---------------------------------------------------------------- what every run carries

def run_tags(policy: Policy, trigger: str) -> dict[str, str]:
    """Tags that tie a run to the policy it applies and to what started it."""
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}; one of {TRIGGERS}")
    return {TAG_TRIGGER: trigger, TAG_POLICY_VERSION: policy.version, TAG_POLICY_HASH: policy.sha256}


def policy_tags(path: Path, trigger: str) -> dict[str, str]:
    """`run_tags` for the policy file at `path`, read now; never raises.

    An unusable policy still launches the run, tagged with the first problem: the run then fails
    on its first step with the full message, and the run-failure alert says so.
    """
    try:
        return run_tags(load_policy(path), trigger)
    except PolicyError as exc:
        return {TAG_TRIGGER: trigger, TAG_POLICY_PROBLEM: exc.problems[0][:200]}


# ---------------------------------------------------------------- reading it back

@dataclass(frozen=True)
class CheckOutcome:
    """One asset check evaluated in a run: its name, the asset it guards, and the verdict."""

    name: str
    asset: str
    passed: bool
    metadata: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSummary:
    """A run as the history records it: status, times, tags, and what its steps reported."""

    run_id: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    tags: dict[str, str]
    materializations: dict[str, dict[str, object]] = field(default_factory=dict)
    checks: list[CheckOutcome] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == dg.DagsterRunStatus.SUCCESS.value

    @property
    def trigger(self) -> str:
        """What started the run: our own tag, else Dagster's schedule or sensor tag, else by hand."""
        if TAG_TRIGGER in self.tags:
            return self.tags[TAG_TRIGGER]
        if "dagster/schedule_name" in self.tags:
            return "schedule"
        if "dagster/sensor_name" in self.tags:
            return "sensor"
        return "hand"


def _aware(ts: float | datetime | None) -> datetime | None:
    if ts is None:
        return None
    if isinstance(ts, datetime):
        return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(ts, timezone.utc)


def _values(metadata) -> dict[str, object]:
    return {key: value.value for key, value in (metadata or {}).items()}


_STEP_EVENTS = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION}


def _summarize(instance: dg.DagsterInstance, record) -> RunSummary:
    run = record.dagster_run
    materializations: dict[str, dict[str, object]] = {}
    checks: list[CheckOutcome] = []
    for event in instance.get_records_for_run(run.run_id, of_type=_STEP_EVENTS, limit=10_000).records:
        dagster_event = event.event_log_entry.dagster_event
        if dagster_event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            mat = dagster_event.step_materialization_data.materialization
            materializations[mat.asset_key.to_user_string()] = _values(mat.metadata)
        else:
            check = dagster_event.event_specific_data
            checks.append(CheckOutcome(name=check.check_name, asset=check.asset_key.to_user_string(),
                                       passed=check.passed, metadata=_values(check.metadata)))
    return RunSummary(
        run_id=run.run_id,
        status=run.status.value,
        created_at=_aware(record.create_timestamp),
        finished_at=_aware(record.end_time),
        tags=dict(run.tags),
        materializations=materializations,
        checks=checks,
    )


def job_runs(instance: dg.DagsterInstance, since: datetime, job: str = NIGHTLY_JOB) -> list[RunSummary]:
    """Every run of `job` created since `since`, oldest first, with its materializations and checks."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job, created_after=since), order_by="create_timestamp", ascending=True
    )
    return [_summarize(instance, record) for record in records]


def run_summary(instance: dg.DagsterInstance, run_id: str) -> RunSummary | None:
    """One run by id, with its materializations and checks; None when the history lacks it."""
    record = instance.get_run_record_by_id(run_id)
    return _summarize(instance, record) if record else None


def first_run_at(instance: dg.DagsterInstance, job: str = NIGHTLY_JOB) -> datetime | None:
    """When the history's first run of `job` was created: nothing before it was recorded."""
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=job), limit=1,
                                       order_by="create_timestamp", ascending=True)
    return _aware(records[0].create_timestamp) if records else None


def last_success(instance: dg.DagsterInstance, job: str = NIGHTLY_JOB) -> RunSummary | None:
    """The newest successful run of `job`, or None when it never succeeded."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS]),
        limit=1, order_by="update_timestamp",
    )
    return _summarize(instance, records[0]) if records else None


def failed_steps(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """(step, error class) of every failed step: never the error text, which may quote data."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1000).records
    steps = []
    for record in records:
        event = record.event_log_entry.dagster_event
        error = getattr(event.event_specific_data, "error", None)
        steps.append((event.step_key or "?", _error_class(error)))
    return steps


def _error_class(error) -> str:
    # A user-code error wraps the real one; its class name is safe to show, its message is not.
    while error is not None and error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
        error = error.cause
    return error.cls_name if error is not None and error.cls_name else "error"
