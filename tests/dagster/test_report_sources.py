"""The report reads the nights kept in the shop, and asks the run history only for the runs
created after the newest kept one (orchestration/reporting.py)."""

from datetime import UTC, datetime, timedelta

from orchestration import history, reporting
from orchestration.run_retention import keep_summaries
from tests.nightly import run_nightly
from tests.shop import add_delivered

DAY = timedelta(days=1)


def test_kept_nights_come_from_the_shop_and_only_newer_runs_from_the_history(
    engine, policy, dagster_settings, dagster_instance, monkeypatch
):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - 40 * DAY)
    first = run_nightly(dagster_settings, dagster_instance)
    second = run_nightly(dagster_settings, dagster_instance)
    assert keep_summaries(dagster_instance, engine) == 2  # what the next night's last step does
    third = run_nightly(dagster_settings, dagster_instance)
    read_from_history: list[str] = []
    job_runs = history.job_runs

    def recording(instance, since, *args):
        runs = job_runs(instance, since, *args)
        read_from_history.extend(run.run_id for run in runs)
        return runs

    monkeypatch.setattr(history, "job_runs", recording)
    now = datetime.now(UTC)

    report = reporting.report_from_history(engine, policy, dagster_instance, now - 30 * DAY, now)

    nights = [night.run_id for night in report.nights if night.run_id]
    assert nights == [first.run_id, second.run_id, third.run_id]
    assert first.run_id not in read_from_history  # kept: read from lifecycle.nightly_summaries
    assert third.run_id in read_from_history  # not kept yet: read from the run history
    assert [n.purged for n in report.nights if n.run_id] == [1, 0, 0]
