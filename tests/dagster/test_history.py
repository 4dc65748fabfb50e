"""The run history lives in PostgreSQL, survives a restart, and ties every run to the one policy
every step of it applied."""

import dataclasses
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from lifecycle import db
from lifecycle.settings import PROJECT_DIR, Settings
from orchestration import history, tags
from orchestration.instance import HistoryError, open_instance, storage_url, write_instance_config
from orchestration.resources import ShopDatabase
from sensors.schedules import nightly_lifecycle_schedule
from tests.nightly import run_nightly
from tests.shop import add_delivered

NOW = datetime.now(UTC)
DAY = timedelta(days=1)


def seed(engine):
    with engine.begin() as conn:
        add_delivered(conn, 1, NOW - 100 * DAY)
        add_delivered(conn, 2, NOW - 90 * DAY)
        add_delivered(conn, 3, NOW - 2 * DAY)


def test_dagster_yaml_puts_runs_events_and_schedules_in_postgresql(dagster_settings):
    home = write_instance_config(dagster_settings)
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    url = sa.make_url(config["storage"]["postgres"]["postgres_url"])
    assert url.database == sa.make_url(dagster_settings.dagster_storage_url).database
    assert url.drivername == "postgresql+psycopg2"
    assert oct((home / "dagster.yaml").stat().st_mode & 0o777) == "0o600"


def test_default_history_is_a_dagster_database_on_the_shops_server(database_url, tmp_path):
    settings = dataclasses.replace(
        Settings.from_env(),
        dagster_home=tmp_path,
        database_url=database_url.render_as_string(hide_password=False),
    )
    admin = database_url.set(database="postgres")
    with db.create_engine(admin).connect() as conn:
        existed = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = 'dagster'"))
        existed = existed.scalar() is not None
    try:
        url = storage_url(settings)
        assert (url.host, url.port, url.database) == (
            database_url.host,
            database_url.port,
            "dagster",
        )
        engine = db.create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_database()")).scalar() == "dagster"
        engine.dispose()
    finally:  # the machine's server is shared: leave no database behind that was not there
        if not existed:
            db.drop_database(admin, "dagster")


def test_run_history_survives_a_restart_of_the_instance(engine, dagster_settings):
    seed(engine)
    with open_instance(dagster_settings) as instance:
        result = run_nightly(dagster_settings, instance)
    assert result.success
    with dg.DagsterInstance.from_config(str(dagster_settings.dagster_home)) as reopened:
        [run] = history.job_runs(reopened, since=NOW - DAY)
        erased = reopened.get_latest_materialization_event(dg.AssetKey("erased_purged_storage"))
    assert run.run_id == result.run_id and run.succeeded
    assert (run.trigger, run.overdue_after, run.anomalies) == ("cli", 0, 0)
    # Rewritten, or pending behind a snapshot another database of a shared server holds open
    # (the night succeeds either way): the history keeps which, as the run recorded it.
    assert erased is not None and erased.run_id == result.run_id
    assert run.erasure_ran is erased.asset_materialization.metadata["ran"].value
    assert sorted((c.name, c.passed) for c in run.checks) == [
        ("cleared_orders_hold_no_personal_data", True),
        ("erasure_within_deadline", True),
        ("no_overdue_personal_data", True),
    ]
    with db.create_engine(dagster_settings.dagster_storage_url).connect() as conn:
        stored = conn.execute(sa.text("SELECT run_id, status FROM runs")).all()
    assert stored == [(result.run_id, "SUCCESS")]


def test_a_cli_run_carries_policy_version_hash_and_trigger(
    engine, dagster_instance, dagster_settings, policy
):
    seed(engine)
    result = run_nightly(dagster_settings, dagster_instance, trigger="cli")
    stamped = dagster_instance.get_run_by_id(result.run_id).tags
    assert stamped[tags.TAG_TRIGGER] == "cli"
    assert stamped[tags.TAG_POLICY_VERSION] == policy.version
    assert stamped[tags.TAG_POLICY_HASH] == policy.sha256[: tags.HASH_CHARS]


def test_a_scheduled_run_records_the_policy_it_reads_when_it_starts(
    engine, dagster_instance, dagster_settings, policy_file, policy
):
    seed(engine)
    path = policy_file(
        PROJECT_DIR.joinpath("policy.yaml").read_text().replace('"2026.11-1"', '"2099.1"')
    )
    request = nightly_lifecycle_schedule(dagster_settings)
    assert request.tags == {tags.TAG_TRIGGER: "schedule"}
    result = run_nightly(dagster_settings, dagster_instance, trigger="schedule", policy_path=path)
    stamped = dagster_instance.get_run_by_id(result.run_id).tags
    assert stamped[tags.TAG_TRIGGER] == "schedule" and stamped[tags.TAG_POLICY_VERSION] == "2099.1"
    with engine.connect() as conn:
        applied = (
            conn.execute(sa.text("SELECT DISTINCT policy_version FROM lifecycle.purge_ledger"))
            .scalars()
            .all()
        )
    assert applied == ["2099.1"]


@pytest.mark.parametrize(
    ("launch_tags", "trigger"),
    [
        ({}, "hand"),
        ({"dagster/backfill": "abcd"}, "backfill"),
        ({"dagster/sensor_name": "x"}, "sensor"),
    ],
)
def test_a_run_launched_from_the_ui_or_a_backfill_says_so_and_names_the_policy(
    engine, dagster_instance, policy, launch_tags, trigger
):
    @dg.asset
    def reads_policy(shop: ShopDatabase) -> None:
        shop.policy()

    defs = dg.Definitions(
        assets=[reads_policy],
        resources={
            "shop": ShopDatabase(
                url=engine.url.render_as_string(hide_password=False),
                policy_path=str(PROJECT_DIR / "policy.yaml"),
            )
        },
    )
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dagster_instance, tags=launch_tags
    )
    stamped = dagster_instance.get_run_by_id(result.run_id).tags
    assert stamped[tags.TAG_TRIGGER] == trigger
    assert (stamped[tags.TAG_POLICY_VERSION], stamped[tags.TAG_POLICY_HASH]) == (
        policy.version,
        policy.short_hash,
    )


def test_every_step_applies_the_policy_the_run_started_with(
    engine, dagster_instance, policy_file, policy
):
    path = policy_file(PROJECT_DIR.joinpath("policy.yaml").read_text())
    seen = []

    @dg.asset
    def first(shop: ShopDatabase) -> None:
        seen.append(shop.policy().sha256)
        path.write_text(path.read_text().replace('"2026.11-1"', '"edited-mid-run"'))

    @dg.asset(deps=[first])
    def second(shop: ShopDatabase) -> None:
        seen.append(shop.policy().sha256)

    defs = dg.Definitions(
        assets=[first, second],
        resources={
            "shop": ShopDatabase(
                url=engine.url.render_as_string(hide_password=False), policy_path=str(path)
            )
        },
    )
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dagster_instance
    )
    assert result.success and seen == [policy.sha256, policy.sha256]
    assert (
        dagster_instance.get_run_by_id(result.run_id).tags[tags.TAG_POLICY_HASH]
        == policy.short_hash
    )


def test_an_unusable_policy_fails_the_run_at_its_start_tagged_with_the_problem(
    engine, dagster_instance, dagster_settings, policy_file
):
    seed(engine)
    path = policy_file('version: "1"\nretention:\n  after_sales_window_days: -3\n')
    result = run_nightly(dagster_settings, dagster_instance, trigger="schedule", policy_path=path)
    assert not result.success
    stamped = dagster_instance.get_run_by_id(result.run_id).tags
    assert stamped[tags.TAG_TRIGGER] == "schedule" and tags.TAG_POLICY_HASH not in stamped
    assert "retention.after_sales_window_days" in stamped[tags.TAG_POLICY_PROBLEM]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM lifecycle.purge_ledger")).scalar() == 0


def test_ledger_run_ids_are_dagster_run_ids(engine, dagster_instance, dagster_settings):
    seed(engine)
    first = run_nightly(dagster_settings, dagster_instance)
    with engine.begin() as conn:
        add_delivered(conn, 4, NOW - 60 * DAY)
    second = run_nightly(dagster_settings, dagster_instance)
    with engine.connect() as conn:
        ledger = dict(
            conn.execute(
                sa.text("SELECT run_id, count(*) FROM lifecycle.purge_ledger GROUP BY run_id")
            ).all()
        )
        purge_runs = set(conn.execute(sa.text("SELECT run_id FROM lifecycle.purge_runs")).scalars())
    assert ledger == {first.run_id: 2, second.run_id: 1}
    assert purge_runs == {first.run_id, second.run_id}
    for run_id in purge_runs:
        assert (
            dagster_instance.get_run_record_by_id(run_id).dagster_run.job_name
            == "nightly_lifecycle"
        )


def test_a_hand_written_dagster_yaml_is_left_alone(dagster_settings):
    home = dagster_settings.dagster_home
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    write_instance_config(dagster_settings)
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_a_history_database_that_does_not_exist_is_named_with_the_fix(database_url, tmp_path):
    missing = database_url.set(database="no_such_history").render_as_string(hide_password=False)
    settings = dataclasses.replace(
        Settings.from_env(), dagster_home=tmp_path, dagster_storage_url=missing
    )
    with pytest.raises(
        HistoryError,
        match=r'database "no_such_history" does not exist; check LIFECYCLE_DAGSTER_STORAGE_URL',
    ):
        open_instance(settings)
