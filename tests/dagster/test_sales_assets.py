"""The sales assets through Dagster, with a real resource on a real database."""

import sys
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.retention import retention_assets, retention_checks
from assets.sales import (
    SALES_DAYS,
    planning_tables,
    refreshed_sales_volume,
    sales_assets,
    sales_checks,
    sales_units_dp,
    sales_volume_daily,
)
from lifecycle import synthetic
from lifecycle.sales import blocks, dp, planning
from lifecycle.settings import PROJECT_DIR
from orchestration.resources import ShopDatabase
from sensors.schedules import nightly_lifecycle
from tests.db.test_sales import add_sale, customers_buy, noon
from tests.db.test_sales_planning_carry import CANCEL_IN_SPAN
from tests.db.test_sales_uncounted_lines import lax_items  # noqa: F401 (a fixture)
from tests.shop import add_delivered, leaked

DAY = timedelta(days=1)
YESTERDAY = datetime.now(UTC).date() - DAY  # the runs judge "yesterday" at their creation
NIGHTLY = [refreshed_sales_volume, planning_tables]


@pytest.fixture(autouse=True)
def yesterday_when_the_test_starts(monkeypatch):
    """Each test takes "yesterday" when it starts, as its runs do when they are created: taken
    once at import, it went stale for every test after the suite crossed midnight UTC (the
    runs offered one day more than the test expected)."""
    monkeypatch.setattr(sys.modules[__name__], "YESTERDAY", datetime.now(UTC).date() - DAY)


def shop_resource(url) -> ShopDatabase:
    return ShopDatabase(
        url=url.render_as_string(hide_password=False), policy_path=str(PROJECT_DIR / "policy.yaml")
    )


def metadata(result, asset: str) -> dict:
    """The step's own materialization of `asset` (not the per-day records the refresh logs for
    the partitions); both planning tables are materialized by the one step `planning_tables`."""
    node = "planning_tables" if asset in ("weekly_demand", "product_line_summary") else asset
    [mat] = [
        m
        for m in result.asset_materializations_for_node(node)
        if m.partition is None and m.asset_key == dg.AssetKey(asset)
    ]
    return {k: v.value for k, v in mat.metadata.items()}


def seed(engine) -> None:
    """Yesterday: six customers in SH (published), two in BJ and two in GD (fold into OTHER, withheld)."""
    with engine.begin() as conn:
        n = customers_buy(conn, 1, [1, 2, 3, 4, 5, 6], day=YESTERDAY, region="SH", quantity=2)
        n = customers_buy(conn, n, [7, 8], day=YESTERDAY, region="BJ")
        n = customers_buy(conn, n, [9, 10], day=YESTERDAY, region="GD")
        customers_buy(conn, n, [11, 12, 13, 14, 15], day=YESTERDAY - 10 * DAY, region="ZJ")


def test_nightly_refresh_shows_rows_protection_cost_preview_and_chart(engine, database_url):
    seed(engine)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*sales_assets],
            selection=NIGHTLY,
            resources={"shop": shop_resource(database_url)},
            instance=instance,
        )
        partitions = instance.get_materialized_partitions(sales_volume_daily.key)
        logs = " ".join(str(e) for e in instance.all_logs(result.run_id))
    assert result.success
    nightly = metadata(result, "refreshed_sales_volume")
    assert (nightly["mode"], nightly["rows_written"], nightly["dagster/row_count"]) == (
        "full",
        2,
        2,
    )
    assert (nightly["units_published"], nightly["units_folded"], nightly["units_withheld"]) == (
        17,
        0,
        4,
    )
    shown = {"sku": "SKU-1", "region": "SH", "orders": "6", "units": "12", "revenue": "120.00"}
    assert nightly["preview"].records[0].data == {**shown, "customers": "6"}
    assert nightly["units_per_region_28d"].startswith("![Daily units per region](data:image/svg")
    regions = nightly["units_per_region_28d_table"].records
    per_region = {r.data["region"]: r.data["units (28 d)"] for r in regions}
    assert per_region == {"SH": "12", "ZJ": "5"}
    assert {YESTERDAY.isoformat(), (YESTERDAY - 10 * DAY).isoformat()} <= partitions
    weekly = metadata(result, "weekly_demand")
    summary = metadata(result, "product_line_summary")
    end = planning.window_end(YESTERDAY)  # the run is dated by the clock: its weekday varies
    assert summary["as_of_date"] == end.isoformat()
    if end == YESTERDAY:
        # On a Monday yesterday's week is complete: its SH row (12 units) beside ZJ's week (5),
        # BJ's and GD's four buyers withheld (17 of 21 units). Asserting ZJ's week alone failed
        # every Monday.
        assert (weekly["rows"], weekly["units_published_pct"]) == (2, 80.95)
        # The 7-day window adds up the weekly table's week: the four buyers it withholds leave no
        # sku or product line of the week whole, and no all row holds them, so it shows nothing
        # (a row of it would give their units away beside the SH row). The longer blocks ended
        # before yesterday's week.
        assert (summary["rows"], summary["units_published"]) == (0, 0)
        assert summary["units_published_pct_per_window"]["7d"] == 0.0
    else:  # the windows end on the last complete week, before yesterday: only ZJ's five buyers
        assert (weekly["rows"], weekly["units_published_pct"]) == (1, 100.0)  # ZJ's week
        # A 28- or 84-day window is the last complete block up to that week, so it holds ZJ's day
        # only on some dates (a sliding window always did: the test failed on most weekdays).
        sale = YESTERDAY - 10 * DAY
        blocks_with_sale = [
            days
            for days in planning.BLOCK_WINDOWS
            if blocks.block_bounds(end, days)[0] <= sale <= blocks.block_bounds(end, days)[1]
        ]
        assert summary["rows"] == len(blocks_with_sale)  # ZJ's sku row in each
        assert set(summary["units_published_pct_per_window"].values()) == {100.0}
    assert not leaked(logs)


def test_backfill_of_a_range_builds_those_days_in_one_run(engine, database_url):
    seed(engine)
    first, last = YESTERDAY - 10 * DAY, YESTERDAY - 6 * DAY
    with dg.DagsterInstance.ephemeral() as instance:
        dg.materialize(
            [*sales_assets],
            selection=[refreshed_sales_volume],
            instance=instance,
            resources={"shop": shop_resource(database_url)},
        )
        with engine.begin() as conn:  # a late order inside the range
            add_sale(conn, 100, 100, noon(YESTERDAY - 10 * DAY), region="ZJ", quantity=4)
        result = dg.materialize(
            [*sales_assets],
            selection=[sales_volume_daily],
            instance=instance,
            resources={"shop": shop_resource(database_url)},
            tags={
                "dagster/asset_partition_range_start": first.isoformat(),
                "dagster/asset_partition_range_end": last.isoformat(),
            },
        )
        runs = instance.get_runs(
            filters=dg.RunsFilter(tags={"dagster/asset_partition_range_start": first.isoformat()})
        )
    mats = result.asset_materializations_for_node("sales_volume_daily")
    assert result.success and len(runs) == 1
    assert sorted(m.partition for m in mats) == [(first + n * DAY).isoformat() for n in range(5)]
    backfill = {k: v.value for k, v in mats[0].metadata.items()}
    assert (backfill["mode"], backfill["days_rebuilt"]) == ("range", 5)
    assert backfill["dates_rebuilt"] == [(first + n * DAY).isoformat() for n in range(5)]
    with engine.connect() as conn:
        units = conn.execute(
            sa.text("SELECT units FROM analytics.sales_volume_daily WHERE region = 'ZJ'")
        ).scalar()
    assert units == 5 + 4


def test_the_nightly_job_purges_and_refreshes_the_sales_tables_in_one_run(engine, database_url):
    seed(engine)
    with engine.begin() as conn:
        add_delivered(conn, 900, datetime.now(UTC) - 100 * DAY)  # due for the purge
    defs = dg.Definitions(
        assets=[*retention_assets, *sales_assets],
        asset_checks=[*retention_checks],
        jobs=[nightly_lifecycle],
        resources={"shop": shop_resource(database_url)},
    )
    job = defs.resolve_job_def("nightly_lifecycle")
    assert sales_volume_daily.key not in job.asset_layer.selected_asset_keys
    assert {key for a in NIGHTLY for key in a.keys} <= job.asset_layer.selected_asset_keys
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance)
    assert result.success
    assert metadata(result, "purged_orders")["purged"] == 1
    assert metadata(result, "refreshed_sales_volume")["units_published"] == 17


def test_a_late_correction_rebuilds_the_planning_tables_from_the_weeks_merges(engine, database_url):
    """Two nightly runs in the same week with 20 orders of the span cancelled between them: the
    second run's planning steps start from the merges the first found, and say so."""
    synthetic.seed_shop(engine, orders=20000, seed=7, as_of=datetime.now(UTC))
    day = planning.window_end(YESTERDAY)
    runs = []
    with dg.DagsterInstance.ephemeral() as instance:
        for night in range(2):
            if night:
                with engine.begin() as conn:
                    assert conn.execute(sa.text(CANCEL_IN_SPAN), {"day": day}).rowcount == 20
            result = dg.materialize(
                [*sales_assets],
                selection=NIGHTLY,
                resources={"shop": shop_resource(database_url)},
                instance=instance,
            )
            assert result.success
            runs.append({a: metadata(result, a) for a in ("weekly_demand", "product_line_summary")})
        logs = " ".join(str(e) for e in instance.all_logs(result.run_id))
    first, late = runs
    for asset in ("weekly_demand", "product_line_summary"):
        assert first[asset]["cells_merged_against_differencing"] > 0
        assert first[asset]["cells_carried_from_the_last_build"] == 0
        assert late[asset]["mode"] == "rebuilt"
        assert late[asset]["cells_carried_from_the_last_build"] > 0
    assert (
        late["weekly_demand"]["suppression_rounds"] < first["weekly_demand"]["suppression_rounds"]
    )
    assert not leaked(logs)


def test_sales_days_offered_run_from_the_first_sale_to_yesterday_and_backfill_in_one_run(
    engine, database_url
):
    assert sales_volume_daily.partitions_def == SALES_DAYS
    assert sales_volume_daily.backfill_policy == dg.BackfillPolicy.single_run()
    seed(engine)
    with dg.DagsterInstance.ephemeral() as instance:
        dg.materialize(
            [*sales_assets],
            selection=[refreshed_sales_volume],
            instance=instance,
            resources={"shop": shop_resource(database_url)},
        )
        offered = instance.get_dynamic_partitions(SALES_DAYS.name)
    first_sale = YESTERDAY - 10 * DAY
    assert offered == [(first_sale + n * DAY).isoformat() for n in range(11)]
    assert datetime.now(UTC).date().isoformat() not in offered


def test_the_dp_release_runs_end_to_end_with_its_budget_check(engine, database_url, tmp_path):
    """Under differential_privacy the asset releases every catalogue sku of the last complete
    periods, shows ε spent and left, and its blocking budget check passes; a re-run draws nothing."""
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(
        (PROJECT_DIR / "policy.yaml")
        .read_text()
        .replace("mechanism: k_threshold", "mechanism: differential_privacy")
    )
    last = dp.periods(YESTERDAY)[-1]
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO shop.products VALUES ('SKU-1', 'tea'), ('SKU-2', 'pet')"))
        customers_buy(conn, 1, [1, 2, 3, 4, 5, 6], day=last + 3 * DAY, region="SH")
    shop = ShopDatabase(
        url=database_url.render_as_string(hide_password=False), policy_path=str(policy_path)
    )
    with dg.DagsterInstance.ephemeral() as instance:
        runs = [
            dg.materialize(
                [*sales_assets, *sales_checks],
                selection=[sales_units_dp],
                resources={"shop": shop},
                instance=instance,
            )
            for _ in range(2)
        ]
    assert all(run.success for run in runs)
    first, again = (metadata(run, "sales_units_dp") for run in runs)
    assert first["periods_released"][-1] == last.isoformat() and len(first["periods_released"]) == 3
    assert first["epsilon_spent_this_run"] == 3.0 and first["dagster/row_count"] == 6
    assert first["epsilon_left_per_period"][last.isoformat()] == 1.0
    assert first["utility_period"].startswith(last.isoformat())
    assert {"sku_28d_top80_median_rel_error_pct", "units_released_pct"} <= first.keys()
    assert again["epsilon_spent_this_run"] == 0 and again["periods_kept_without_new_noise"] == 3
    [check] = runs[1].get_asset_check_evaluations()
    assert check.check_name == "dp_release_within_budget" and check.passed


def test_a_catalogue_listing_a_sku_under_two_lines_is_named_in_the_run(
    engine, database_url, tmp_path
):
    """The planning steps succeed, count the sku once, and say in the run which sku the shop's
    catalogue lists under two product lines and what to fix."""
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(
        (PROJECT_DIR / "policy.yaml")
        .read_text()
        .replace("table: shop.products ", "table: public.shop_catalogue ")
    )
    seed(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE public.shop_catalogue (sku text, product_line text)"))
        conn.execute(
            sa.text("INSERT INTO public.shop_catalogue VALUES ('SKU-1', 'tea'), ('SKU-1', 'pet')")
        )
    shop = ShopDatabase(
        url=database_url.render_as_string(hide_password=False), policy_path=str(policy_path)
    )
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            result = dg.materialize(
                [*sales_assets], selection=NIGHTLY, resources={"shop": shop}, instance=instance
            )
            logs = [e.message for e in instance.all_logs(result.run_id)]
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE public.shop_catalogue"))
    assert result.success
    for asset in ("weekly_demand", "product_line_summary"):
        assert metadata(result, asset)["catalogue_skus_under_several_lines"] == 1
    warned = [m for m in logs if "listed under more than one product line" in m]
    [warning] = warned  # the one step that builds both tables says it once
    assert "('SKU-1')" in warning and "public.shop_catalogue" in warning


@pytest.mark.usefixtures("lax_items")
def test_sales_lines_without_a_sku_are_left_out_and_named_in_the_run(engine, database_url):
    """A line table that allows a line without a sku, and an order whose status is the shop's own
    word: the nightly's sales steps succeed, publish the rest, and each says in one line how many
    lines it left out and of which orders, and in another which statuses it does not know."""
    seed(engine)
    with engine.begin() as conn:
        add_sale(conn, 90, 90, noon(YESTERDAY - 10 * DAY), region="SH")  # in both tables' span
        conn.execute(sa.text("UPDATE shop.order_items SET sku = NULL WHERE order_id = 90"))
        add_sale(conn, 91, 91, noon(YESTERDAY - 10 * DAY), quantity=4, status="approved")
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*sales_assets],
            selection=NIGHTLY,
            resources={"shop": shop_resource(database_url)},
            instance=instance,
        )
        logs = [e.message for e in instance.all_logs(result.run_id)]
    assert result.success
    for asset in ("refreshed_sales_volume", "weekly_demand", "product_line_summary"):
        assert metadata(result, asset)["order_lines_not_counted"] == 1
    warned = [m for m in logs if "without a sku, a quantity or a unit price" in m]
    assert len(warned) == 2  # the daily refresh and the planning step
    assert all("(orders 90)" in m and "shop.order_items" in m for m in warned)
    for asset in ("refreshed_sales_volume", "weekly_demand", "product_line_summary"):
        assert metadata(result, asset)["units_of_unknown_status"] == 4
    unknown = [m for m in logs if "of orders whose status is none of" in m]
    assert len(unknown) == 2 and all("(e.g. 'approved')" in m for m in unknown)
