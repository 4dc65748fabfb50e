"""The carrier hand-off through Dagster, with real resources on a real database."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa

from assets.logistics import logistics_assets, logistics_checks
from assets.retention import retention_assets, retention_checks
from definitions import defs
from orchestration.resources import ExportFolder, ShopDatabase
from tests.carriers import ALL_FIELDS, CARRIERS_POLICY, add_pending, set_order
from tests.db.test_erasure import quiet_horizon
from tests.shop import add_delivered, leaked

NOW = datetime.now(UTC)


def materialize(url, instance, policy_path, exports):
    resources = {
        "shop": ShopDatabase(
            url=url.render_as_string(hide_password=False), policy_path=str(policy_path)
        ),
        "exports": ExportFolder(path=str(exports)),
    }
    return dg.materialize(
        [*retention_assets, *logistics_assets, *retention_checks, *logistics_checks],
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def metadata(result, asset: str) -> dict:
    [mat] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mat.metadata.items()}


def checks(result) -> dict[str, bool]:
    return {c.check_name: c.passed for c in result.get_asset_check_evaluations()}


def seed(engine):
    with engine.begin() as conn:
        add_pending(conn, 1, "sf_express", paid_at=NOW - timedelta(days=1))
        add_pending(conn, 2, "zto_express", status="shipped", paid_at=NOW - timedelta(days=1))
        add_pending(conn, 3, "jd_logistics", paid_at=NOW - timedelta(days=1))
        add_delivered(conn, 4, NOW - timedelta(days=100), carrier="sf_express")  # purged tonight


def test_the_nightly_assets_hand_off_check_and_export_after_the_purge(
    engine, database_url, policy_file, tmp_path
):
    seed(engine)
    path = policy_file(CARRIERS_POLICY.format(fields=ALL_FIELDS, batch_size=50_000))
    quiet_horizon(engine)  # the night's erasure rewrites the hand-off too
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(database_url, instance, path, tmp_path / "exports")
        logs = " ".join(str(e) for e in instance.all_logs(result.run_id))
        order = [
            e.asset_key.to_user_string()
            for e in result.get_asset_materialization_events()
            for e in [e.event_specific_data.materialization]
        ]
    assert result.success
    assert checks(result) == {
        "no_overdue_personal_data": True,
        "cleared_orders_hold_no_personal_data": True,
        "erasure_within_deadline": True,
        "handoff_has_only_allowed_columns": True,
        "no_handoff_row_for_finished_orders": True,
        "carrier_roles_see_only_their_own_rows": True,
    }
    handoff = metadata(result, "carrier_handoff")
    assert handoff["rows_by_carrier"] == {"sf_express": 1, "zto_express": 1, "jd_logistics": 1}
    assert handoff["carrier_roles"] == [
        "lifecycle_carrier_sf_express",
        "lifecycle_carrier_zto_express",
    ]
    assert (
        order.index("purged_orders")
        < order.index("carrier_handoff")
        < order.index("erased_purged_storage")
    )
    assert "logistics.handoff" in metadata(result, "erased_purged_storage")["tables"]
    files = metadata(result, "carrier_files")["rows_by_carrier"]
    assert files == {"sf_express": 1, "jd_logistics": 1}
    manifest = json.loads(
        (tmp_path / "exports" / "logistics" / "sf_express" / "manifest.json").read_text()
    )
    assert manifest["run_id"] == result.run_id
    assert not leaked(logs)


def test_a_delivered_order_leaves_the_hand_off_and_the_file_in_the_next_run(
    engine, database_url, policy_file, tmp_path
):
    seed(engine)
    path = policy_file(CARRIERS_POLICY.format(fields=ALL_FIELDS, batch_size=50_000))
    with dg.DagsterInstance.ephemeral() as instance:
        assert materialize(database_url, instance, path, tmp_path).success
        with engine.begin() as conn:
            set_order(conn, 1, status="delivered", delivered_at=NOW)
        result = materialize(database_url, instance, path, tmp_path)
    assert result.success
    assert metadata(result, "carrier_handoff")["removed_by_reason"] == {"delivered": 1}
    with engine.connect() as conn:
        assert conn.execute(
            sa.text("SELECT order_id FROM logistics.handoff ORDER BY 1")
        ).scalars().all() == [2, 3]
    assert (tmp_path / "logistics" / "sf_express" / "deliveries.csv").read_text().count(
        "\n"
    ) == 1  # header only


def test_an_opened_grant_fails_the_check_and_stops_files_and_erasure(
    engine, database_url, policy_file, tmp_path
):
    seed(engine)
    path = policy_file(CARRIERS_POLICY.format(fields=ALL_FIELDS, batch_size=50_000))
    with dg.DagsterInstance.ephemeral() as instance:
        assert materialize(database_url, instance, path, tmp_path).success  # creates the roles
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "GRANT USAGE ON SCHEMA shop TO lifecycle_carrier_zto_express; "
                "GRANT SELECT ON shop.orders TO lifecycle_carrier_zto_express"
            )
        )
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            result = materialize(database_url, instance, path, tmp_path / "second")
        assert not result.success
        assert checks(result)["carrier_roles_see_only_their_own_rows"] is False
        [evaluation] = [
            c
            for c in result.get_asset_check_evaluations()
            if c.check_name == "carrier_roles_see_only_their_own_rows"
        ]
        assert "shop.orders: relation_readable" in evaluation.description
        assert "lifecycle_carrier_zto_express can read it" in evaluation.description
        assert result.asset_materializations_for_node("carrier_files") == []
        assert result.asset_materializations_for_node("erased_purged_storage") == []
        assert not (tmp_path / "second").exists()
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "REVOKE ALL ON shop.orders FROM lifecycle_carrier_zto_express; "
                    "REVOKE ALL ON SCHEMA shop FROM lifecycle_carrier_zto_express"
                )
            )


def test_a_policy_that_widens_the_hand_off_fails_the_run_before_anything_is_shared(
    engine, database_url, policy_file, tmp_path
):
    seed(engine)
    path = policy_file(
        CARRIERS_POLICY.format(fields="receiver_name, receiver_email", batch_size=50_000)
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(database_url, instance, path, tmp_path)
    assert not result.success
    failures = [
        e.step_failure_data.user_failure_data.description
        for e in result.all_events
        if e.is_step_failure
    ]
    assert any(
        "policy.yaml: logistics.fields: 'receiver_email' may not go to carriers" in f
        for f in failures
    )
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM logistics.handoff")).scalar() == 0


def test_the_nightly_job_refreshes_the_hand_off_between_purge_and_erasure():
    job = defs.resolve_job_def("nightly_lifecycle")
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"carrier_handoff", "carrier_files"} <= keys
    assert (
        dg.AssetKey("carrier_handoff")
        in graph.get(dg.AssetKey("erased_purged_storage")).parent_keys
    )
    assert dg.AssetKey("purged_orders") in graph.get(dg.AssetKey("carrier_handoff")).parent_keys
    specs = {spec.name: spec for check in logistics_checks for spec in check.check_specs}
    assert set(specs) == {
        "handoff_has_only_allowed_columns",
        "no_handoff_row_for_finished_orders",
        "carrier_roles_see_only_their_own_rows",
    }
    assert all(
        spec.blocking and spec.asset_key == dg.AssetKey("carrier_handoff")
        for spec in specs.values()
    )
    assert set(specs) <= {key.name for key in graph.asset_check_keys}
    assert {"carrier_handoff", "carrier_files"} <= {
        n.to_user_string() for n in job.asset_layer.selected_asset_keys
    }
