"""The Definitions load, and every job, schedule, sensor and check the project promises is there.

A snapshot of names: adding or renaming a definition is a deliberate change to this list.
"""

import json

import dagster as dg

from definitions import defs
from lifecycle.settings import PROJECT_DIR

ASSETS = {
    "due_orders",
    "purged_orders",
    "erased_purged_storage",  # retention
    "carrier_handoff",
    "carrier_files",  # logistics
    "refreshed_sales_volume",
    "sales_volume_daily",
    "weekly_demand",
    "product_line_summary",
    "sales_units_dp",
    "handled_data_requests",
    "finished_erasure_requests",
    "open_data_requests",  # requests
    "expired_request_exports",
    "analytics_zone",  # guard
    "ledger_anchor",  # evidence
    "pruned_run_history",
}
BLOCKING_CHECKS = {
    "no_overdue_personal_data",
    "cleared_orders_hold_no_personal_data",
    "handoff_has_only_allowed_columns",
    "no_handoff_row_for_finished_orders",
    "carrier_roles_see_only_their_own_rows",
    "raw_columns_all_classified",
    "analyst_cannot_read_personal_columns",
    "no_personal_columns_in_analytics",
    "no_personal_patterns_in_analytics",
    "no_raw_values_in_analytics",
    "published_cells_cover_k_customers",
    "no_differencing_in_sales_tables",
    "dp_release_within_budget",
    "no_raw_values_in_run_history",
    "access_exports_private_and_on_time",
}
# Overdue requests are flagged, not blocking: a late answer must not stop the night's purge.
# The ledger's verification reports tampering without stopping the night's purge; a pending
# erasure alerts only past its deadline; the server-log settings warn.
NON_BLOCKING_CHECKS = {
    "no_overdue_data_requests",
    "ledger_chain_intact",
    "erasure_within_deadline",
    "server_log_keeps_no_values",
}


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


def test_every_asset_is_defined():
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == ASSETS


def test_leak_and_retention_checks_block_what_follows():
    blocking = {
        spec.name: spec.blocking for checks in defs.asset_checks for spec in checks.check_specs
    }
    assert {name for name, b in blocking.items() if b} == BLOCKING_CHECKS
    assert {name for name, b in blocking.items() if not b} == NON_BLOCKING_CHECKS


def test_every_check_says_what_it_asserts_in_the_one_sentence_the_report_reads():
    """The UI's description of each check is its sentence in lifecycle/assertions.py, which the
    report and `lifecycle guard` read without loading these definitions."""
    from lifecycle.assertions import ASSERTS

    described = {
        spec.name: spec.description for checks in defs.asset_checks for spec in checks.check_specs
    }
    assert described == ASSERTS
    assert all(sentence.endswith(".") and "\n" not in sentence for sentence in ASSERTS.values())


def test_jobs_schedule_and_sensors_exist():
    assert {"nightly_lifecycle", "data_requests"} <= {
        job.name for job in defs.resolve_all_job_defs()
    }
    schedule = defs.resolve_schedule_def("nightly_lifecycle_schedule")
    assert schedule.job_name == "nightly_lifecycle"
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"
    assert {s.name for s in defs.sensors} == {
        "data_requests_sensor",
        "nightly_lifecycle_failure_alert",
        "nightly_lifecycle_freshness_alert",
    }


RESOURCES_PAGE = """query Resources($selector: RepositorySelector!) {
  allTopLevelResourceDetailsOrError(repositorySelector: $selector) {
    ... on ResourceDetailsList { results { name configuredValues { key value type } } }
  }
}"""


def test_no_configured_secret_is_shown_on_the_resources_page(monkeypatch, tmp_path):
    """What the UI's Resources page shows (its GraphQL query, against a real code server): secrets
    appear as the names of their environment variables, never as values."""
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    secrets = {
        "LIFECYCLE_DATABASE_URL": "postgresql://shop:s3cr3t-pw@db.internal:5432/shop",
        "LIFECYCLE_WEBHOOK_URL": "https://hooks.example.com/services/T0KEN-abcdef",
        "LIFECYCLE_GUARD_SECRET": "guard-secret-0123456789abcdef",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LIFECYCLE_HOME", str(tmp_path))
    with (
        dg.instance_for_test() as instance,
        define_out_of_process_context(
            str(PROJECT_DIR / "definitions.py"), None, instance
        ) as context,
    ):
        selector = {
            "repositoryLocationName": context.code_location_names[0],
            "repositoryName": "__repository__",
        }
        result = execute_dagster_graphql(context, RESOURCES_PAGE, {"selector": selector})
    shown = {
        (r["name"], v["key"]): (v["type"], v["value"])
        for r in result.data["allTopLevelResourceDetailsOrError"]["results"]
        for v in r["configuredValues"]
    }
    assert shown[("shop", "url")] == ("ENV_VAR", "LIFECYCLE_DATABASE_URL")
    assert shown[("webhook", "url")] == ("ENV_VAR", "LIFECYCLE_WEBHOOK_URL")
    assert shown[("guard_secret", "secret")] == ("ENV_VAR", "LIFECYCLE_GUARD_SECRET")
    page = json.dumps(result.data)
    assert not [
        name for name, value in secrets.items() if value in page or value.split("@")[0] in page
    ]


def test_the_names_the_run_history_is_read_by_are_defined():
    from orchestration import names

    assert {names.NIGHTLY_JOB, names.DATA_REQUESTS_JOB} <= {
        job.name for job in defs.resolve_all_job_defs()
    }
    assert {names.DUE_ORDERS, names.ERASED_STORAGE} <= ASSETS
    assert names.OVERDUE_CHECK in BLOCKING_CHECKS
