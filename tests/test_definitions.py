"""The Definitions load, and every job, schedule, sensor and check the project promises is there."""

import dagster as dg

from definitions import defs


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


def test_nightly_job_and_its_schedule_exist():
    job = defs.resolve_job_def("nightly_lifecycle")
    schedule = defs.resolve_schedule_def("nightly_lifecycle_schedule")
    assert schedule.job_name == job.name
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"


def test_retention_assets_and_blocking_check_are_defined():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"due_orders", "purged_orders", "erased_purged_storage"} <= keys
    checks = {key.name: key for key in graph.asset_check_keys}
    assert "no_overdue_personal_data" in checks
