"""The retention assets through Dagster, with a real resource on a real database."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa

from assets.retention import retention_assets, retention_checks
from lifecycle.settings import PROJECT_DIR
from orchestration.resources import ShopDatabase
from tests.db.test_erasure import roots
from tests.shop import add_case, add_delivered, is_purged, leaked, purge_swallowed

NOW = datetime.now(UTC)
DAY = timedelta(days=1)


def materialize(url, instance, policy_path=PROJECT_DIR / "policy.yaml"):
    shop = ShopDatabase(url=url.render_as_string(hide_password=False), policy_path=str(policy_path))
    return dg.materialize(
        [*retention_assets, *retention_checks],
        resources={"shop": shop},
        instance=instance,
        raise_on_error=False,
    )


def metadata(result, asset: str) -> dict:
    [mat] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mat.metadata.items()}


def seed_small_shop(engine):
    with engine.begin() as conn:
        add_delivered(conn, 1, NOW - 100 * DAY)  # due
        add_delivered(conn, 2, NOW - 2 * DAY)  # waiting
        add_delivered(conn, 3, NOW - 100 * DAY)  # kept by an open case
        add_case(conn, 30, 3, NOW - 95 * DAY, closed_at=None)


def test_nightly_assets_purge_due_orders_and_report_counts(engine, database_url):
    seed_small_shop(engine)
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(database_url, instance)
        assert result.success
        due, purged = metadata(result, "due_orders"), metadata(result, "purged_orders")
        erased = metadata(result, "erased_purged_storage")
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        logs = " ".join(str(e) for e in instance.all_logs(result.run_id))
    assert (due["eligible"], due["kept_by_open_case"], due["waiting_for_window"]) == (1, 1, 1)
    assert purged["purged"] == 1 and purged["purged_sample_order_ids"] == "1"  # one line of text
    # Rewritten, or pending behind a snapshot another session of the shared server holds open.
    assert erased["ran"] is True or (erased["waiting_for"] and erased["pending_tables"])
    assert checks == {
        "no_overdue_personal_data": True,
        "cleared_orders_hold_no_personal_data": True,
        "erasure_within_deadline": True,
    }
    with engine.connect() as conn:
        assert [is_purged(conn, oid) for oid in (1, 2, 3)] == [True, False, False]
        ledger_run = conn.execute(
            sa.text("SELECT DISTINCT run_id FROM lifecycle.purge_ledger")
        ).scalar()
    assert ledger_run == result.run_id
    assert not leaked(logs)


def test_overdue_order_left_behind_fails_the_check_and_blocks_erasure(engine, database_url):
    seed_small_shop(engine)
    with purge_swallowed(engine, order_id=1), dg.DagsterInstance.ephemeral() as instance:
        result = materialize(database_url, instance)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    check = checks["no_overdue_personal_data"]
    assert not check.passed and check.metadata["overdue_orders"].value == 1
    assert not result.success
    assert result.asset_materializations_for_node("erased_purged_storage") == []


def test_a_policy_naming_a_missing_column_fails_the_run_before_any_purge(
    engine, database_url, policy_file
):
    seed_small_shop(engine)
    path = policy_file('version: "1"\nraw:\n  orders:\n    personal_columns: [receiver_nam]\n')
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(database_url, instance, policy_path=path)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "column 'receiver_nam' not in shop.orders (did you mean 'receiver_name'?)" in (
        failure.step_failure_data.user_failure_data.description
    )
    with engine.connect() as conn:
        assert not is_purged(conn, 1)


def test_a_snapshot_that_can_see_the_cleared_rows_leaves_the_erasure_pending_and_the_run_green(
    engine, database_url, policy_file
):
    seed_small_shop(engine)
    text = (PROJECT_DIR / "policy.yaml").read_text()
    assert "erasure_lock_timeout_seconds: 30" in text
    path = policy_file(
        text.replace("erasure_lock_timeout_seconds: 30", "erasure_lock_timeout_seconds: 1")
    )
    reader = engine.connect()  # a report's snapshot in the shop database, open all night
    try:
        reader.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        reader.execute(sa.text("SELECT count(*) FROM shop.orders"))
        with dg.DagsterInstance.ephemeral() as instance:
            result = materialize(database_url, instance, policy_path=path)
    finally:
        reader.rollback()
        reader.close()
    assert result.success
    erased = metadata(result, "erased_purged_storage")
    # On a partitioned shop the partition that waits is named (shop.orders_p0): more precise.
    assert erased["ran"] is False and "shop.orders" in roots(engine, erased["pending_tables"])
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["erasure_within_deadline"] is True  # pending for seconds, not past 48 h
    with engine.connect() as conn:
        assert is_purged(conn, 1)
        waits = conn.execute(sa.text("SELECT count(*) FROM lifecycle.erasure_waits")).scalar()
    assert waits == 1
