"""The run history lives in PostgreSQL, survives a restart, and ties every run to its policy."""

import dataclasses
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from lifecycle import db, history
from lifecycle.settings import Settings
from sensors.schedules import nightly_lifecycle, nightly_lifecycle_schedule
from tests.nightly import run_nightly
from tests.shop import add_delivered

NOW = datetime.now(timezone.utc)
DAY = timedelta(days=1)


def seed(engine):
    with engine.begin() as conn:
        add_delivered(conn, 1, NOW - 100 * DAY)
        add_delivered(conn, 2, NOW - 90 * DAY)
        add_delivered(conn, 3, NOW - 2 * DAY)


def test_dagster_yaml_puts_runs_events_and_schedules_in_postgresql(dagster_settings):
    home = history.write_instance_config(dagster_settings)
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    url = sa.make_url(config["storage"]["postgres"]["postgres_url"])
    assert url.database == sa.make_url(dagster_settings.dagster_storage_url).database
    assert url.drivername == "postgresql+psycopg2"
    assert oct((home / "dagster.yaml").stat().st_mode & 0o777) == "0o600"


def test_default_history_is_a_dagster_database_on_the_shops_server(database_url, tmp_path):
    settings = dataclasses.replace(Settings.from_env(), dagster_home=tmp_path,
                                   database_url=database_url.render_as_string(hide_password=False))
    url = history.storage_url(settings)
    assert (url.host, url.port, url.database) == (database_url.host, database_url.port, "dagster")
    with db.create_engine(url).connect() as conn:
        assert conn.execute(sa.text("SELECT current_database()")).scalar() == "dagster"


def test_run_history_survives_a_restart_of_the_instance(engine, dagster_settings):
    seed(engine)
    with history.open_instance(dagster_settings) as instance:
        result = run_nightly(dagster_settings, instance)
    assert result.success
    with dg.DagsterInstance.from_config(str(dagster_settings.dagster_home)) as reopened:
        [run] = history.job_runs(reopened, since=NOW - DAY)
    assert run.run_id == result.run_id and run.succeeded
    assert run.materializations["purged_orders"]["purged"] == 2
    assert [(c.name, c.passed) for c in run.checks] == [("no_overdue_personal_data", True)]
    with db.create_engine(dagster_settings.dagster_storage_url).connect() as conn:
        stored = conn.execute(sa.text("SELECT run_id, status FROM runs")).all()
    assert stored == [(result.run_id, "SUCCESS")]


def test_a_cli_run_carries_policy_version_hash_and_trigger(engine, dagster_instance, dagster_settings, policy):
    seed(engine)
    result = run_nightly(dagster_settings, dagster_instance, trigger="cli")
    tags = dagster_instance.get_run_by_id(result.run_id).tags
    assert tags[history.TAG_TRIGGER] == "cli"
    assert tags[history.TAG_POLICY_VERSION] == policy.version
    assert tags[history.TAG_POLICY_HASH] == policy.sha256


def test_a_scheduled_run_reads_the_policy_at_the_tick(policy_file, policy):
    path = policy_file('version: "2099.1"\n')
    settings = dataclasses.replace(Settings.from_env(), policy_path=path)
    request = nightly_lifecycle_schedule(settings)(dg.build_schedule_context())
    assert request.tags[history.TAG_TRIGGER] == "schedule"
    assert request.tags[history.TAG_POLICY_VERSION] == "2099.1"
    assert request.tags[history.TAG_POLICY_HASH] != policy.sha256


def test_a_run_launched_by_hand_from_the_ui_says_so_and_names_the_policy(policy):
    tags = nightly_lifecycle.tags
    assert tags[history.TAG_TRIGGER] == "hand"
    assert (tags[history.TAG_POLICY_VERSION], tags[history.TAG_POLICY_HASH]) == (policy.version, policy.sha256)


def test_an_unusable_policy_still_launches_a_run_tagged_with_the_problem(policy_file):
    path = policy_file('version: "1"\nretention:\n  after_sales_window_days: -3\n')
    tags = history.policy_tags(path, "schedule")
    assert tags[history.TAG_TRIGGER] == "schedule" and history.TAG_POLICY_HASH not in tags
    assert "retention.after_sales_window_days" in tags[history.TAG_POLICY_PROBLEM]


def test_ledger_run_ids_are_dagster_run_ids(engine, dagster_instance, dagster_settings):
    seed(engine)
    first = run_nightly(dagster_settings, dagster_instance)
    with engine.begin() as conn:
        add_delivered(conn, 4, NOW - 60 * DAY)
    second = run_nightly(dagster_settings, dagster_instance)
    with engine.connect() as conn:
        ledger = dict(conn.execute(sa.text(
            "SELECT run_id, count(*) FROM lifecycle.purge_ledger GROUP BY run_id")).all())
        purge_runs = set(conn.execute(sa.text("SELECT run_id FROM lifecycle.purge_runs")).scalars())
    assert ledger == {first.run_id: 2, second.run_id: 1}
    assert purge_runs == {first.run_id, second.run_id}
    for run_id in purge_runs:
        assert dagster_instance.get_run_record_by_id(run_id).dagster_run.job_name == "nightly_lifecycle"


def test_a_hand_written_dagster_yaml_is_left_alone(dagster_settings):
    home = dagster_settings.dagster_home
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    history.write_instance_config(dagster_settings)
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_a_history_database_that_does_not_exist_is_named_with_the_fix(database_url, tmp_path):
    missing = database_url.set(database="no_such_history").render_as_string(hide_password=False)
    settings = dataclasses.replace(Settings.from_env(), dagster_home=tmp_path, dagster_storage_url=missing)
    with pytest.raises(history.HistoryError, match=r'database "no_such_history" does not exist; check LIFECYCLE_DAGSTER_STORAGE_URL'):
        history.open_instance(settings)
