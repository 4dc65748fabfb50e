"""The run history has its own retention: old runs leave Dagster's storage, the report stays the same."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import yaml

from orchestration import history
from orchestration.reporting import report_from_history
from orchestration.run_retention import prune
from tests.nightly import run_nightly
from tests.shop import add_delivered

DAY = timedelta(days=1)


def comparable(report) -> dict:
    data = report.as_dict()
    data.pop("generated_at")
    return data


def test_runs_older_than_the_setting_go_and_the_report_is_unchanged(
    engine, policy, dagster_settings, dagster_instance
):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - 40 * DAY)
    old = run_nightly(dagster_settings, dagster_instance)
    with engine.begin() as conn:
        add_delivered(conn, 2, datetime.now(UTC) - 40 * DAY)
    new = run_nightly(dagster_settings, dagster_instance)
    now = datetime.now(UTC)
    before = report_from_history(engine, policy, dagster_instance, now - 30 * DAY, now)
    cut = history.run_created_at(dagster_instance, new.run_id)  # the old run was created before

    pruned = prune(dagster_instance, engine, older_than=cut)

    assert (pruned.summarised, pruned.deleted) == (2, 1)
    assert dagster_instance.get_run_record_by_id(old.run_id) is None
    assert list(dagster_instance.all_logs(old.run_id)) == []  # its event records went with it
    assert dagster_instance.get_run_record_by_id(new.run_id) is not None
    after = report_from_history(engine, policy, dagster_instance, now - 30 * DAY, now)
    assert comparable(after) == comparable(before)
    assert [n.purged for n in after.nights if n.run_id] == [1, 1]
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT count(*) FROM lifecycle.nightly_summaries")).scalar()
    assert kept == 2
    assert prune(dagster_instance, engine, older_than=cut).summarised == 0  # kept once


def test_the_instance_keeps_ticks_for_a_bounded_time(dagster_settings, dagster_instance):
    config = yaml.safe_load((dagster_settings.dagster_home / "dagster.yaml").read_text())
    assert config["retention"]["schedule"] == {"purge_after_days": 90}
    assert config["retention"]["sensor"]["purge_after_days"]["skipped"] == 7
