"""The data-requests sensor, its job and the nightly finishing pass, on a real instance and database."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.logistics import logistics_assets, logistics_checks
from assets.requests import requests_assets, requests_checks
from assets.retention import retention_assets, retention_checks
from lifecycle.logistics.files import export_carrier_files
from lifecycle.logistics.handoff import refresh_handoff
from lifecycle.policy import load_policy
from lifecycle.settings import PROJECT_DIR
from orchestration.resources import ExportFolder, ShopDatabase
from sensors.requests import (
    BATCH_TAG,
    MAX_ATTEMPTS,
    RequestCursor,
    data_requests_job,
    data_requests_sensor,
)
from tests.carriers import add_pending, handoff, set_order
from tests.db.test_requests import NEW_PHONE, add_request, request_row
from tests.shop import PERSONAL, add_case, add_delivered, add_order, is_purged, leaked

NOW = datetime.now(UTC)
DAY = timedelta(days=1)


def resources(database_url, export_dir) -> dict:
    return {
        "shop": ShopDatabase(
            url=database_url.render_as_string(hide_password=False),
            policy_path=str(PROJECT_DIR / "policy.yaml"),
        ),
        "exports": ExportFolder(path=str(export_dir)),
    }


def definitions(database_url, export_dir) -> dg.Definitions:
    return dg.Definitions(
        assets=[*retention_assets, *requests_assets, *logistics_assets],
        asset_checks=[*retention_checks, *requests_checks, *logistics_checks],
        jobs=[data_requests_job],
        sensors=[data_requests_sensor],
        resources=resources(database_url, export_dir),
    )


def tick(instance, database_url, export_dir, cursor=None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=resources(database_url, export_dir)
    )
    return data_requests_sensor(context)


def launch(
    instance, database_url, export_dir, run_request: dg.RunRequest
) -> dg.ExecuteInProcessResult:
    """Runs what the sensor asked for, as the daemon would: the same config and tags."""
    job = definitions(database_url, export_dir).resolve_job_def("data_requests")
    return job.execute_in_process(
        run_config=run_request.run_config,
        tags=run_request.tags,
        instance=instance,
        raise_on_error=False,
    )


def seed(engine):
    with engine.begin() as conn:
        add_order(conn, 1, "paid", NOW - 2 * DAY, customer_id=42, paid_at=NOW - 2 * DAY)
        add_delivered(conn, 2, NOW - 5 * DAY, customer_id=42)
        add_order(
            conn,
            3,
            "shipped",
            NOW - 3 * DAY,
            customer_id=42,
            paid_at=NOW - 3 * DAY,
            shipped_at=NOW - 2 * DAY,
        )
        add_delivered(conn, 4, NOW - 40 * DAY, customer_id=42)
        add_case(conn, 40, 4, NOW - 30 * DAY, closed_at=None)
        add_delivered(conn, 5, NOW - 4 * DAY, customer_id=43)
        add_request(conn, 100, "access", customer_id=43, received_at=NOW - 3 * DAY)
        add_request(
            conn,
            101,
            "correct",
            {"fields": {"receiver_phone": NEW_PHONE}},
            received_at=NOW - 2 * DAY,
        )
        add_request(conn, 102, "erase", received_at=NOW - DAY)


def event_log_text(instance, run_id) -> str:
    return " ".join(str(entry) for entry in instance.all_logs(run_id))


def test_one_tick_launches_one_run_that_answers_every_new_request(
    engine, database_url, dagster_instance, tmp_path
):
    seed(engine)
    first = tick(dagster_instance, database_url, tmp_path)
    [run_request] = first.run_requests
    assert run_request.run_config["ops"]["handled_data_requests"]["config"]["request_ids"] == [
        100,
        101,
        102,
    ]

    result = launch(dagster_instance, database_url, tmp_path, run_request)

    assert result.success
    with engine.connect() as conn:
        statuses = {r: request_row(conn, r)["status"] for r in (100, 101, 102)}
        assert [is_purged(conn, oid) for oid in (1, 2, 3, 4, 5)] == [
            False,
            True,
            False,
            False,
            False,
        ]
    assert statuses == {100: "done", 101: "partly_done", 102: "partly_done"}
    handled = result.asset_materializations_for_node("handled_data_requests")[0].metadata
    assert handled["handled"].value == 3 and handled["orders_cleared"].value == 1
    [erased] = result.asset_materializations_for_node("erased_purged_storage")
    # The erasure left the data files in the same run, unless a snapshot another session of the
    # shared server holds can still see the cleared rows: then it is pending and says behind whom.
    waiting = erased.metadata["waiting_for"].value
    assert erased.metadata["ran"].value is True or (
        waiting and erased.metadata["pending_tables"].value
    )
    assert (tmp_path / "requests" / "request-100" / "export.json").exists()

    second = tick(dagster_instance, database_url, tmp_path, first.cursor)
    assert second.run_requests == [] and "no new request" in second.skip_reason.skip_message
    assert RequestCursor.parse(second.cursor).in_flight == {}


def test_requests_arriving_while_a_batch_runs_wait_for_the_next_batch(
    engine, database_url, dagster_instance, tmp_path
):
    seed(engine)
    first = tick(dagster_instance, database_url, tmp_path)
    [run_request] = first.run_requests
    job = definitions(database_url, tmp_path).resolve_job_def("data_requests")
    queued = dagster_instance.create_run_for_job(
        job_def=job,
        run_config=run_request.run_config,
        tags=run_request.tags,
        status=dg.DagsterRunStatus.NOT_STARTED,
    )
    with engine.begin() as conn:
        add_request(conn, 103, "access", customer_id=43, received_at=NOW)

    second = tick(dagster_instance, database_url, tmp_path, first.cursor)

    [next_request] = second.run_requests
    assert next_request.run_config["ops"]["handled_data_requests"]["config"]["request_ids"] == [103]
    assert next_request.tags[BATCH_TAG] != run_request.tags[BATCH_TAG]
    dagster_instance.delete_run(queued.run_id)


def test_a_request_is_never_answered_twice_even_when_its_batch_is_launched_again(
    engine, database_url, dagster_instance, tmp_path
):
    seed(engine)
    [run_request] = tick(dagster_instance, database_url, tmp_path).run_requests
    assert launch(dagster_instance, database_url, tmp_path, run_request).success
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM lifecycle.request_actions")).scalar()
        ledger = conn.execute(sa.text("SELECT count(*) FROM lifecycle.purge_ledger")).scalar()

    again = launch(dagster_instance, database_url, tmp_path, run_request)

    assert again.success
    meta = again.asset_materializations_for_node("handled_data_requests")[0].metadata
    assert meta["handled"].value == 0 and meta["skipped_request_ids"].value == "100, 101, 102"
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT count(*) FROM lifecycle.request_actions")).scalar()
            == before
        )
        assert (
            conn.execute(sa.text("SELECT count(*) FROM lifecycle.purge_ledger")).scalar() == ledger
        )


def test_a_failed_request_is_retried_on_the_next_tick_and_given_up_after_three_runs(
    engine, database_url, dagster_instance, tmp_path
):
    seed(engine)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("the export folder is a file, so writing the access export fails")
    cursor = None
    for attempt in range(MAX_ATTEMPTS):
        result = tick(dagster_instance, database_url, blocked, cursor)
        [run_request] = result.run_requests
        expected = [100, 101, 102] if attempt == 0 else [100]
        assert (
            run_request.run_config["ops"]["handled_data_requests"]["config"]["request_ids"]
            == expected
        )
        run = launch(dagster_instance, database_url, blocked, run_request)
        assert not run.success
        failure = next(e for e in run.all_events if e.event_type_value == "STEP_FAILURE")
        assert "request 100" in str(failure.event_specific_data.error)
        cursor = result.cursor
        assert RequestCursor.parse(
            tick(dagster_instance, database_url, blocked, cursor).cursor
        ).attempts == {100: attempt + 1}

    given_up = tick(dagster_instance, database_url, blocked, cursor)
    assert given_up.run_requests == []
    with engine.connect() as conn:
        assert request_row(conn, 100)["status"] == "in_progress"
        assert (
            request_row(conn, 101)["status"] == "partly_done"
        )  # the others were answered on the first run


def test_a_request_that_failed_once_is_answered_by_the_retry(
    engine, database_url, dagster_instance, tmp_path
):
    seed(engine)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("x")
    first = tick(dagster_instance, database_url, blocked)
    assert not launch(dagster_instance, database_url, blocked, first.run_requests[0]).success

    retry = tick(dagster_instance, database_url, tmp_path, first.cursor)
    [run_request] = retry.run_requests
    assert launch(dagster_instance, database_url, tmp_path, run_request).success

    with engine.connect() as conn:
        assert request_row(conn, 100)["status"] == "done"
    assert (
        RequestCursor.parse(
            tick(dagster_instance, database_url, tmp_path, retry.cursor).cursor
        ).attempts
        == {}
    )


def test_no_personal_value_reaches_the_event_log_metadata_or_results(
    engine, database_url, dagster_instance, tmp_path
):
    seed(engine)
    with engine.begin() as conn:
        add_request(
            conn,
            103,
            "correct",
            {"fields": {"receiver_phone": "Wang Fang +86 138"}},
            received_at=NOW,
        )
        add_request(
            conn, 104, PERSONAL["receiver_email"], received_at=NOW
        )  # a kind that is a value
    [run_request] = tick(dagster_instance, database_url, tmp_path).run_requests
    result = launch(dagster_instance, database_url, tmp_path, run_request)
    assert result.success
    logs = event_log_text(dagster_instance, result.run_id)
    with engine.connect() as conn:
        results = json.dumps([request_row(conn, r)["result"] for r in range(100, 105)])
    assert "request 104 (unknown): rejected" in logs
    planted = [*PERSONAL.values(), NEW_PHONE, "customer says parcel was damaged", "Wang Fang"]
    assert not leaked(logs, planted) and not leaked(results, planted)


def test_erasure_waiting_on_delivery_finishes_on_a_later_nightly_run(
    engine, database_url, dagster_instance, tmp_path
):
    seed(engine)
    [run_request] = tick(dagster_instance, database_url, tmp_path).run_requests
    launch(dagster_instance, database_url, tmp_path, run_request)
    with engine.begin() as conn:  # the parcel arrives; the case on order 4 closes
        conn.execute(
            sa.text(
                "UPDATE shop.orders SET status = 'delivered', delivered_at = :t WHERE order_id = 3"
            ),
            {"t": NOW - DAY},
        )
        conn.execute(
            sa.text("UPDATE shop.after_sales_cases SET closed_at = :t WHERE case_id = 40"),
            {"t": NOW - DAY},
        )

    nightly = dg.materialize(
        [*retention_assets, *retention_checks, *requests_assets, *requests_checks],
        selection=dg.AssetSelection.all() - dg.AssetSelection.tag("lifecycle/on_demand", "true"),
        resources=resources(database_url, tmp_path),
        instance=dagster_instance,
    )

    assert nightly.success
    finished = nightly.asset_materializations_for_node("finished_erasure_requests")[0].metadata
    assert finished["orders_cleared"].value == 2 and finished["requests_done"].value == 0
    assert (
        nightly.asset_materializations_for_node("erased_purged_storage")[0].metadata["ran"].value
        is True
    )
    with engine.connect() as conn:
        row = request_row(conn, 102)
        runs = (
            conn.execute(
                sa.text("""SELECT DISTINCT run_id FROM lifecycle.purge_ledger
                                       WHERE request_id = 102 AND order_id IN (1, 3, 4)""")
            )
            .scalars()
            .all()
        )
        assert is_purged(conn, 3) and is_purged(conn, 4) and not is_purged(conn, 1)
    assert row["status"] == "partly_done"  # order 1 is still paid, not yet delivered
    assert runs == [nightly.run_id]
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE shop.orders SET status = 'cancelled', cancelled_at = :t WHERE order_id = 1"
            ),
            {"t": NOW},
        )
    later = dg.materialize(
        [*requests_assets],
        selection=["finished_erasure_requests"],
        resources=resources(database_url, tmp_path),
        instance=dagster_instance,
    )
    done = later.asset_materializations_for_node("finished_erasure_requests")[0].metadata
    assert done["done_request_ids"].value == "102"
    with engine.connect() as conn:
        assert request_row(conn, 102)["status"] == "done" and is_purged(conn, 1)


def test_overdue_request_fails_the_check_and_the_ui_lists_open_requests_by_age(
    engine, database_url, dagster_instance, tmp_path
):
    with engine.begin() as conn:
        add_delivered(conn, 1, NOW - 5 * DAY, customer_id=42)
        add_request(conn, 200, "access", received_at=NOW - 20 * DAY)
        add_request(conn, 201, "access", received_at=NOW - DAY)
    result = dg.materialize(
        [*requests_assets, *requests_checks],
        selection=dg.AssetSelection.assets("open_data_requests"),
        resources=resources(database_url, tmp_path),
        instance=dagster_instance,
        raise_on_error=False,
    )
    [check] = result.get_asset_check_evaluations()
    meta = result.asset_materializations_for_node("open_data_requests")[0].metadata
    assert check.check_name == "no_overdue_data_requests" and not check.passed
    assert check.metadata["overdue_request_ids"].value == [200]
    assert isinstance(meta["open_by_age"], dg.TableMetadataValue)
    rows = [r.data for r in meta["open_by_age"].records if r.data["request"].startswith("20")]
    assert [r["request"] for r in rows] == ["200", "201"] and rows[0]["overdue"] == "yes"


@pytest.mark.parametrize(
    "job, present, absent",
    [
        (
            "nightly_lifecycle",
            {"finished_erasure_requests", "open_data_requests", "expired_request_exports"},
            {"handled_data_requests"},
        ),
        (
            "data_requests",
            {"handled_data_requests", "erased_purged_storage", "open_data_requests"},
            {"purged_orders", "finished_erasure_requests"},
        ),
    ],
)
def test_the_nightly_job_finishes_erasures_and_only_the_sensors_job_answers_requests(
    job, present, absent
):
    from definitions import defs

    keys = {
        key.to_user_string() for key in defs.resolve_job_def(job).asset_layer.executable_asset_keys
    }
    assert present <= keys and not (absent & keys)
    assert defs.resolve_sensor_def("data_requests_sensor").job_name == "data_requests"


def test_an_order_erased_on_request_leaves_the_carriers_rows_and_file_in_the_same_run(
    engine, database_url, dagster_instance, tmp_path
):
    """Order 7 was handed to jd_logistics last night and delivered today; its customer asks to be
    erased. The answer cleared the order while the hand-off row and the carrier's file kept the
    name, phone and address until the next night's refresh."""
    with engine.begin() as conn:
        add_pending(conn, 7, "jd_logistics", status="shipped", customer_id=42)
    policy = load_policy(PROJECT_DIR / "policy.yaml")
    exports = tmp_path / "logistics"
    refresh_handoff(engine, policy, run_id="last-night")
    export_carrier_files(engine, policy, exports, run_id="last-night")
    csv = exports / "jd_logistics" / "deliveries.csv"
    assert leaked(csv.read_text(), [PERSONAL["receiver_name"]])
    with engine.begin() as conn:
        set_order(conn, 7, status="delivered", delivered_at=NOW - DAY / 2)
        add_request(conn, 300, "erase", received_at=NOW - DAY / 4)

    [run_request] = tick(dagster_instance, database_url, tmp_path).run_requests
    result = launch(dagster_instance, database_url, tmp_path, run_request)

    assert result.success
    with engine.connect() as conn:
        assert request_row(conn, 300)["status"] == "done" and is_purged(conn, 7)
        assert handoff(conn) == {}
    assert not leaked(csv.read_text(), [PERSONAL["receiver_name"], PERSONAL["receiver_phone"]])
