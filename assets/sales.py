"""Sales-volume assets: the published daily table, its nightly refresh, and the planning tables.

`sales_volume_daily` is partitioned by sales date so any range can be backfilled from the UI in
one set-based run. The nightly job cannot hold it beside unpartitioned assets, so the job runs
`refreshed_sales_volume` instead, which rebuilds yesterday and the changed days and records each
of them as a materialization of its `sales_volume_daily` partition. The partitions are the days
the shop has sold on: from its first sale to the last day that has ended, registered by the
refresh as they are built (a day still in progress is never offered).
"""

import time
from collections.abc import Iterator
from datetime import date

import dagster as dg

from assets.check_results import as_asset_check_result
from assets.metadata import table
from lifecycle.assertions import ASSERTS
from lifecycle.sales import daily, dp
from lifecycle.sales.charts import units_per_region
from lifecycle.sales.planning import build_planning_tables
from lifecycle.sales.previews import (
    Preview,
    day_preview,
    product_line_preview,
    weekly_demand_preview,
)
from orchestration.resources import ShopDatabase

SALES_DAYS = dg.DynamicPartitionsDefinition(name="sales_days")


def _preview_metadata(preview: Preview) -> dict[str, object]:
    """`preview`: the rows as a table (or why there are none); `preview_shows`: which rows."""
    if preview.table is None:
        return {"preview": preview.caption}
    return {"preview": table(preview.table), "preview_shows": preview.caption}


def _log_warnings(context: dg.AssetExecutionContext, *warnings: str | None) -> None:
    """A build's one-line warnings about its input (what was found, what it did, the fix)."""
    for warning in warnings:
        if warning:
            context.log.warning(warning)


def _published_metadata(
    shop: ShopDatabase, build: daily.SalesBuild, started: float
) -> dict[str, object]:
    """The build's figures, a preview and a chart; `seconds` is the whole step (recording each
    day's partition and drawing the preview included) so it matches the step's time in the UI,
    `build_seconds` the SQL build alone."""
    engine = shop.engine()
    shown_day = build.days[-1] if build.days else build.last_complete_day
    figures = build.metadata()
    figures["build_seconds"] = figures.pop("seconds")
    chart, per_region = units_per_region(engine, build.last_complete_day)
    return {
        **figures,
        "dagster/row_count": build.table_rows,
        **_preview_metadata(day_preview(engine, shown_day)),
        "units_per_region_28d": dg.MetadataValue.md(chart),
        **({"units_per_region_28d_table": table(per_region)} if per_region else {}),
        "seconds": round(time.monotonic() - started, 3),
    }


@dg.asset(
    group_name="analytics",
    kinds={"postgres"},
    owners=["team:data"],
    partitions_def=SALES_DAYS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    tags={"lifecycle/partitions": "sales_days"},
)
def sales_volume_daily(
    context: dg.AssetExecutionContext, shop: ShopDatabase
) -> dg.MaterializeResult:
    """Units sold per sales date, sku and region, small cells folded into OTHER (docs/sales.md).

    A partition is a sales date in the shop's time zone; a range is rebuilt in one transaction.
    """
    started = time.monotonic()
    keys = context.partition_key_range
    build = daily.build_range(
        shop.engine(),
        shop.policy(),
        date.fromisoformat(keys.start),
        date.fromisoformat(keys.end),
        run_id=context.run.run_id,
        as_of=shop.as_of(),
    )
    if build.skipped_incomplete:
        skipped = [d.isoformat() for d in build.skipped_incomplete]
        context.log.warning(f"not built, the day has not ended yet: {skipped}")
    _log_warnings(
        context,
        build.capture_warning(),
        *build.uncounted.warnings(),
    )
    return dg.MaterializeResult(metadata=_published_metadata(shop, build, started))


@dg.asset(group_name="analytics", kinds={"postgres"}, owners=["team:data"])
def refreshed_sales_volume(
    context: dg.AssetExecutionContext, shop: ShopDatabase
) -> dg.MaterializeResult:
    """Nightly: rebuilds yesterday and every earlier day whose orders changed since it was built."""
    started = time.monotonic()
    build = daily.refresh(
        shop.engine(), shop.policy(), run_id=context.run.run_id, as_of=shop.as_of()
    )
    context.log.info(build.summary())
    _log_warnings(
        context,
        build.capture_warning(),
        *build.uncounted.warnings(),
    )
    known = set(context.instance.get_dynamic_partitions(SALES_DAYS.name))
    new = [
        day.isoformat() for day in daily.built_days(shop.engine()) if day.isoformat() not in known
    ]
    if new:
        context.instance.add_dynamic_partitions(SALES_DAYS.name, new)
    for day in build.stats:
        context.log_event(
            dg.AssetMaterialization(
                asset_key=sales_volume_daily.key,
                partition=day.sales_date.isoformat(),
                metadata=day.metadata(),
            )
        )
    return dg.MaterializeResult(metadata=_published_metadata(shop, build, started))


PRODUCT_LINE_SUMMARY = dg.AssetKey("product_line_summary")
WEEKLY_DEMAND = dg.AssetKey("weekly_demand")


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            PRODUCT_LINE_SUMMARY,
            description="Units per sku and product line over the last complete 7-, 28- and 84-day "
            "blocks; merged so no subtraction leaks, across the copies a reader keeps too.",
            group_name="analytics",
            kinds={"postgres"},
            owners=["team:data"],
            deps=[refreshed_sales_volume, sales_volume_daily],
        ),
        dg.AssetSpec(
            WEEKLY_DEMAND,
            description="Units per ISO week, sku and region over 13 weeks; small cells rolled up, "
            "not withheld.",
            group_name="analytics",
            kinds={"postgres"},
            owners=["team:data"],
            deps=[refreshed_sales_volume, sales_volume_daily, PRODUCT_LINE_SUMMARY],
        ),
    ],
    can_subset=False,
)
def planning_tables(
    context: dg.AssetExecutionContext, shop: ShopDatabase
) -> Iterator[dg.MaterializeResult]:
    """Both planning tables in one step and one transaction: the weekly table is merged against
    the summary beside it, so they are published together or not at all (a summary rebuilt alone
    would sit beside a weekly table merged against the one before it)."""
    engine = shop.engine()
    summary, weekly = build_planning_tables(engine, shop.policy(), shop.as_of())
    _log_warnings(
        context,
        summary.catalogue.warning(),
        *weekly.uncounted.warnings(),
        weekly.not_in_catalogue.warning(),
    )
    previews = {
        PRODUCT_LINE_SUMMARY: product_line_preview(engine),
        WEEKLY_DEMAND: weekly_demand_preview(engine),
    }
    for key, report in ((PRODUCT_LINE_SUMMARY, summary), (WEEKLY_DEMAND, weekly)):
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                **report.metadata(),
                "dagster/row_count": report.rows,
                **_preview_metadata(previews[key]),
            },
        )


@dg.asset(
    group_name="analytics",
    kinds={"postgres"},
    owners=["team:data"],
    deps=[refreshed_sales_volume, sales_volume_daily],
)
def sales_units_dp(context: dg.AssetExecutionContext, shop: ShopDatabase) -> dg.MaterializeResult:
    """28-day units per catalogue sku with OpenDP noise, when the policy's mechanism asks for it."""
    report = dp.release(shop.engine(), shop.policy(), shop.as_of(), run_id=context.run.run_id)
    _log_warnings(
        context,
        report.catalogue.warning(),
        *report.uncounted.warnings(),
        report.without_customer.warning(),
        report.not_in_catalogue.warning(),
    )
    return dg.MaterializeResult(metadata={**report.metadata(), "dagster/row_count": report.rows})


@dg.asset_check(
    asset=sales_units_dp,
    blocking=True,
    description=ASSERTS["dp_release_within_budget"],
)
def dp_release_within_budget(shop: ShopDatabase) -> dg.AssetCheckResult:
    """Reads the ε ledger and the refused re-releases."""
    return as_asset_check_result(dp.budget_check(shop.engine(), shop.policy()))


sales_assets = [
    sales_volume_daily,
    refreshed_sales_volume,
    planning_tables,
    sales_units_dp,
]
sales_checks = [dp_release_within_budget]
