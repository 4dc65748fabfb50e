"""The guard's blocking checks through Dagster, with real resources, a real database and a real
instance: a planted leak fails the nightly run, stops what is downstream, and never reaches the
stored event log; a value logged by another step is found in the run history."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.guard import (
    GUARD_CHECKS,
    PRIORITY_TAG,
    analytics_zone,
    guard_assets,
    guard_checks,
    raw_value_checks,
    run_history_check,
)
from assets.retention import retention_assets, retention_checks
from assets.sales import sales_assets
from lifecycle.guard.provenance import fold
from lifecycle.guard.tokens import normalise
from lifecycle.settings import PROJECT_DIR
from orchestration.history_scan import RUN_LOG
from orchestration.resources import GuardSecret, ShopDatabase
from sensors.schedules import nightly_lifecycle
from tests.shop import PERSONAL, add_delivered

NOW = datetime.now(UTC)
SECRET = GuardSecret(secret="test-guard-secret-0123456789", key_file="/nonexistent/guard.key")
PLANTED = {
    "contact": PERSONAL["receiver_email"],
    "remark": f"Call {PERSONAL['receiver_name']} on 138-0013-8000",
}


@dg.asset(deps=[analytics_zone])
def published_export() -> None:
    """Stands for whatever publishes from analytics: it must not run after a failed check."""


@pytest.fixture
def shop(engine, database_url, monkeypatch):
    with engine.begin() as conn:
        add_delivered(conn, 1, NOW - timedelta(days=2))
    return ShopDatabase(
        url=database_url.render_as_string(hide_password=False),
        policy_path=str(PROJECT_DIR / "policy.yaml"),
    )


@pytest.fixture
def planted(engine):
    """Someone else's table in analytics holding an email and a sentence with a name and a phone."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE analytics.adhoc_leads AS SELECT 'SH'::text AS region, "
                "CAST(:contact AS text) AS contact, CAST(:remark AS text) AS remark"
            ),
            PLANTED,
        )
    yield PLANTED
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS analytics.adhoc_leads"))


def nightly(shop, instance, *extra_assets) -> dg.ExecuteInProcessResult:
    defs = dg.Definitions(
        assets=[*retention_assets, *sales_assets, *guard_assets, *extra_assets],
        asset_checks=[*retention_checks, *guard_checks],
        jobs=[nightly_lifecycle],
        resources={"shop": shop, "guard_secret": SECRET},
    )
    return defs.resolve_job_def("nightly_lifecycle").execute_in_process(
        instance=instance, raise_on_error=False
    )


def verdicts(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def stored_events(instance, run_id: str) -> str:
    """The run's events as the event log storage returns them, every string unescaped."""
    return "\n".join(
        json.dumps(json.loads(dg.serialize_value(e)), ensure_ascii=False)
        for e in instance.all_logs(run_id)
    )


def test_a_clean_night_passes_every_guard_check_and_publishes(shop):
    with dg.DagsterInstance.ephemeral() as instance:
        result = nightly(shop, instance, published_export)
    assert result.success
    assert set(verdicts(result)) >= {next(iter(c.check_keys)).name for c in guard_checks}
    assert all(verdicts(result).values())
    assert result.asset_materializations_for_node("published_export")
    [zone] = result.asset_materializations_for_node("analytics_zone")
    # + analytics.sales_units_dp and its product lines' sums, empty under k_threshold
    assert zone.metadata["relation_count"].value == 5
    # The nightly reads the zone incrementally; its first night is a full scan.
    zone_scans = {
        e.check_name: e.metadata
        for e in result.get_asset_check_evaluations()
        if e.check_name
        in {
            "no_personal_patterns_in_analytics",
            "no_raw_values_in_analytics",
            "published_cells_cover_k_customers",
        }
    }
    assert len(zone_scans) == 3
    for metadata in zone_scans.values():
        assert metadata["scanned_full_scan"].value is True
        assert metadata["scanned_relations_unchanged_skipped"].value == 0


def test_a_planted_leak_fails_the_night_stops_downstream_and_stays_out_of_the_event_log(
    shop, planted
):
    with dg.DagsterInstance.ephemeral() as instance:
        result = nightly(shop, instance, published_export)
        run = instance.get_run_by_id(result.run_id)
        events = stored_events(instance, result.run_id)
    failed = {name for name, passed in verdicts(result).items() if not passed}
    assert failed == {"no_personal_patterns_in_analytics", "no_raw_values_in_analytics"}
    assert not result.success and run.status == dg.DagsterRunStatus.FAILURE
    assert result.asset_materializations_for_node("published_export") == []
    [check] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "no_raw_values_in_analytics"
    ]
    assert check.metadata["failed_on"].value == [
        "analytics.adhoc_leads.contact",
        "analytics.adhoc_leads.remark",
    ]
    assert "adhoc_leads" in events and "raw_value_in_text" in events
    for value in [
        *planted.values(),
        PERSONAL["receiver_name"],
        "wang fang",
        "13800138000",
        "wang.fang@",
    ]:
        assert value.lower() not in events.lower()


def an_earlier_night_logging(instance: dg.DagsterInstance, message: str) -> None:
    """A finished nightly run in `instance` whose one step logged `message`."""

    @dg.asset(name="chatty_step")
    def chatty_step(context: dg.AssetExecutionContext) -> None:
        context.log.info(message)

    earlier = dg.Definitions(assets=[chatty_step], jobs=[dg.define_asset_job("nightly_lifecycle")])
    assert (
        earlier.resolve_job_def("nightly_lifecycle").execute_in_process(instance=instance).success
    )


def test_a_value_logged_by_an_earlier_night_is_found_in_its_stored_events(shop):
    with dg.DagsterInstance.ephemeral() as instance:
        an_earlier_night_logging(instance, f"sent the receipt to {PERSONAL['receiver_email']}")
        result = dg.materialize(
            [analytics_zone, *guard_checks],
            resources={"shop": shop, "guard_secret": SECRET},
            instance=instance,
            raise_on_error=False,
        )
    [check] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "no_raw_values_in_run_history"
    ]
    assert not check.passed and not result.success
    assert check.metadata["scanned_runs"].value == 2
    assert any(
        where.startswith("dagster event log.run ") and where.endswith("/ chatty_step")
        for where in check.metadata["failed_on"].value
    )
    assert PERSONAL["receiver_email"] not in check.description


def test_one_raw_pass_catches_a_value_in_analytics_and_another_in_the_run_history(
    shop, planted, engine
):
    """The two raw-value checks share one comparison with the raw zone (one step): each still
    finds its own leak, named by its own relation, and the raw zone is hashed once."""

    passes = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().startswith("INSERT INTO guard_hits"):
            passes.append(statement)

    with dg.DagsterInstance.ephemeral() as instance:
        an_earlier_night_logging(instance, PERSONAL["payment_ref"])
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
        try:
            result = nightly(shop, instance, published_export)
        finally:
            sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)
    checks = {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.check_name in {"no_raw_values_in_analytics", "no_raw_values_in_run_history"}
    }
    assert not result.success and not any(c.passed for c in checks.values())
    assert result.asset_materializations_for_node("published_export") == []
    assert checks["no_raw_values_in_analytics"].metadata["failed_on"].value == [
        "analytics.adhoc_leads.contact",
        "analytics.adhoc_leads.remark",
    ]
    history = checks["no_raw_values_in_run_history"]
    assert history.metadata["failed_on"].value and all(
        where.startswith("dagster event log.run ") and where.endswith("/ chatty_step")
        for where in history.metadata["failed_on"].value
    )
    assert "shop.orders.payment_ref" in history.description
    assert history.metadata["scanned_runs"].value == 2  # the earlier night and this one so far
    assert len(passes) == 1  # one comparison with the raw zone for both checks
    with engine.connect() as conn:  # the log's clean digests are kept; the leaked one never
        kept = set(
            conn.execute(sa.text("SELECT relation, h FROM lifecycle.guard_zone_digests")).all()
        )
    assert {r for r, _ in kept} == {*{r for r, _ in kept if r.startswith("analytics.")}, RUN_LOG}
    leaked = SECRET.key().digest("f:" + fold(normalise(PERSONAL["payment_ref"])))
    assert (RUN_LOG, leaked) not in kept and any(r == RUN_LOG for r, _ in kept)
    for check in checks.values():
        assert PERSONAL["payment_ref"] not in check.description
        assert PERSONAL["receiver_email"] not in check.description


def test_either_raw_value_check_runs_alone_when_selected_alone(shop, planted):
    """The shared step answers only the checks selected (a re-execution from the UI, say)."""
    with dg.DagsterInstance.ephemeral() as instance:
        for name, passed in (
            ("no_raw_values_in_analytics", False),
            ("no_raw_values_in_run_history", True),
        ):
            result = dg.materialize(
                [analytics_zone, *guard_checks],
                selection=dg.AssetSelection.checks(dg.AssetCheckKey(analytics_zone.key, name)),
                resources={"shop": shop, "guard_secret": SECRET},
                instance=instance,
                raise_on_error=False,
            )
            assert verdicts(result) == {name: passed}


def test_a_relation_the_database_refuses_fails_its_check_with_the_reason_and_stops_the_run(
    shop, engine
):
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE VIEW analytics.adhoc_broken AS "
                "SELECT (v::int)::text AS remark FROM (VALUES ('Wang Fang')) AS t(v)"
            )
        )
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            result = dg.materialize(
                [analytics_zone, *guard_checks],
                resources={"shop": shop, "guard_secret": SECRET},
                instance=instance,
                raise_on_error=False,
            )
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP VIEW analytics.adhoc_broken"))
    [check] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "no_raw_values_in_analytics"
    ]
    # A finding for that relation; every other check still ran and reported.
    assert not check.passed and not result.success
    assert "22P02: InvalidTextRepresentation" in check.description
    assert check.metadata["failed_on"].value == ["analytics.adhoc_broken.remark"]
    assert "Wang Fang" not in check.description
    evaluated = {e.check_name for e in result.get_asset_check_evaluations()}
    assert evaluated == {c.name for c in GUARD_CHECKS} | {"no_raw_values_in_run_history"}


def test_the_nightly_job_runs_the_guard_after_the_published_tables_and_every_check_blocks():
    from definitions import defs

    graph = defs.resolve_asset_graph()
    job = defs.resolve_job_def("nightly_lifecycle")
    assert analytics_zone.key in job.asset_layer.selected_asset_keys
    assert {dep.to_user_string() for dep in graph.get(analytics_zone.key).parent_keys} == {
        "refreshed_sales_volume",
        "weekly_demand",
        "product_line_summary",
    }
    specs = [spec for checks in guard_checks for spec in checks.check_specs]
    assert len(specs) == 8 and all(
        spec.blocking and spec.asset_key == analytics_zone.key for spec in specs
    )


def test_the_raw_value_step_starts_when_no_other_step_of_the_nightly_is_ready():
    """It reads the run history, so it runs last: of the night, only its own last events are
    written after it has read (orchestration/step_tail.py renders those in advance)."""
    from dagster._core.execution.api import create_execution_plan

    from definitions import defs

    plan = create_execution_plan(defs.resolve_job_def("nightly_lifecycle"))
    priority = {step.key: int(step.tags.get(PRIORITY_TAG, 0)) for step in plan.steps}
    guard = raw_value_checks.op.name
    assert priority[guard] < min(p for key, p in priority.items() if key != guard)
    waiting = {step.key for step in plan.steps if guard in step.get_execution_dependency_keys()}
    assert not waiting  # nothing waits for it, so every other step has run when it starts


def test_a_value_a_step_printed_into_its_compute_log_is_found(shop, tmp_path):
    @dg.asset(name="printing_step")
    def printing_step() -> None:
        print(f"sent the receipt to {PERSONAL['receiver_email']}")  # stdout, not the event log

    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        earlier = dg.Definitions(
            assets=[printing_step], jobs=[dg.define_asset_job("nightly_lifecycle")]
        )
        run = earlier.resolve_job_def("nightly_lifecycle").execute_in_process(instance=instance)
        assert run.success
        events = stored_events(instance, run.run_id)
        result = dg.materialize(
            [analytics_zone, *guard_checks],
            resources={"shop": shop, "guard_secret": SECRET},
            instance=instance,
            raise_on_error=False,
        )
    assert PERSONAL["receiver_email"] not in events  # only the compute log holds it
    [check] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "no_raw_values_in_run_history"
    ]
    assert not check.passed
    assert any(" / compute log " in where for where in check.metadata["failed_on"].value)
    assert PERSONAL["receiver_email"] not in check.description


def test_the_run_history_scan_reads_only_what_was_written_since_its_last_clean_scan(
    engine, policy, dagster_instance
):
    with engine.begin() as conn:
        add_delivered(conn, 1, NOW - timedelta(days=2))

    def night(message: str) -> str:
        @dg.asset(name="step")
        def step(context: dg.AssetExecutionContext) -> None:
            context.log.info(message)

        defs = dg.Definitions(assets=[step], jobs=[dg.define_asset_job("nightly_lifecycle")])
        run = defs.resolve_job_def("nightly_lifecycle").execute_in_process(
            instance=dagster_instance
        )
        assert run.success
        return run.run_id

    def scan():
        check = run_history_check(dagster_instance)  # incremental: no run ids given
        return check.scan(engine, policy, SECRET.key())

    night("refreshed 12 rows")
    first = scan()
    assert first.passed and first.scanned["events"] > 0
    unchanged = scan()
    assert unchanged.passed and unchanged.scanned["events"] == 0
    assert unchanged.scanned["distinct_tokens"] == 0

    leaky = night(f"sent the receipt to {PERSONAL['receiver_email']}")
    found = scan()
    assert not found.passed and 0 < found.scanned["events"] < first.scanned["events"] + 5
    assert all(f.column.startswith(f"run {leaky[:8]}") for f in found.findings)
    # Not passed clean, so not skipped: the leak is found again until the run is deleted.
    again = scan()
    assert not again.passed and again.scanned["events"] == found.scanned["events"]


def test_the_run_history_read_fetches_only_the_events_past_a_runs_position(
    dagster_instance, monkeypatch
):
    """A run the last scan saw part of costs its new events: the older ones are neither fetched
    nor deserialised (the store is asked for the ids past the position)."""
    from orchestration.history_since import read

    @dg.asset(name="step")
    def step(context: dg.AssetExecutionContext) -> None:
        for n in range(20):
            context.log.info(f"line {n}")

    defs = dg.Definitions(assets=[step], jobs=[dg.define_asset_job("nightly_lifecycle")])
    run_id = (
        defs.resolve_job_def("nightly_lifecycle")
        .execute_in_process(instance=dagster_instance)
        .run_id
    )
    ids = [r.storage_id for r in dagster_instance.get_records_for_run(run_id).records]
    floor = ids[len(ids) // 2]
    fetched = []
    original = dagster_instance.get_records_for_run

    def counting(*args, **kwargs):
        connection = original(*args, **kwargs)
        if kwargs.get("limit") != 1:  # the newest-record probe is one row whatever the history
            fetched.extend(r.storage_id for r in connection.records)
        return connection

    monkeypatch.setattr(dagster_instance, "get_records_for_run", counting)
    new = read(dagster_instance, [run_id], {run_id: floor})
    assert new.events == len([i for i in ids if i > floor]) > 0
    assert sorted(fetched) == [i for i in ids if i > floor]
    assert new.reached[run_id] == ids[-1]


def test_night_after_night_the_raw_pass_settles_to_no_whole_pass(shop):
    """On a shop where nothing changes, the run log's texts repeat once each wording has been met:
    run ids and hashes are cut out, durations cut out of Dagster's step messages, counts folded.
    So after the first night no night hashes the raw zone whole: a text that changed every night
    (a step's duration crossing a second, a count crossing a thousand) made every night a whole
    pass, and the first night's tail (what it wrote after the check read the history, and the
    regular night's texts it never writes) made the second one (orchestration/step_tail.py)."""
    passes = []
    with dg.DagsterInstance.ephemeral() as instance:
        for _ in range(7):
            result = nightly(shop, instance)
            assert result.success
            [zone] = [
                e.metadata
                for e in result.get_asset_check_evaluations()
                if e.check_name == "no_raw_values_in_analytics"
            ]
            passes.append(
                (zone["scanned_raw_values"].value, zone["scanned_tokens_never_compared"].value)
            )
    assert passes[0][0] == "all"  # the first night compares everything
    assert all(read in ("new only", "none (unchanged)") and n == 0 for read, n in passes[1:]), (
        passes
    )
