"""Leak guard: the analytics zone as it stands tonight, and the blocking checks that prove it holds
nothing personal and that analysts cannot reach the raw zone (lifecycle/guard.py, docs/guard.md).

Anything that publishes from analytics (an export, a dashboard refresh) should depend on
`analytics_zone`, so a failed check stops it; the failure also fails the nightly run.
"""

import dagster as dg

from assets.sales import product_line_summary, refreshed_sales_volume, weekly_demand
from lifecycle import guard
from lifecycle.fingerprint import load_key
from lifecycle.resources import ShopDatabase
from lifecycle.settings import Settings


@dg.asset(group_name="guard", kinds={"postgres"}, owners=["team:data"],
          deps=[refreshed_sales_volume, weekly_demand, product_line_summary])
def analytics_zone(shop: ShopDatabase) -> dg.MaterializeResult:
    """Every table and view in schema analytics tonight, whoever wrote it: what the checks inspect."""
    zone = guard.zone_inventory(shop.engine())
    return dg.MaterializeResult(metadata={**zone.metadata(), "relations": dg.MetadataValue.md(zone.markdown())})


def _verdict(report: guard.CheckReport) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=report.passed, description=report.description(),
                               metadata={**report.metadata(), "findings": dg.MetadataValue.md(report.markdown())})


@dg.asset_check(asset=analytics_zone, blocking=True)
def raw_columns_all_classified(shop: ShopDatabase) -> dg.AssetCheckResult:
    """The raw tables hold exactly the columns the policy classifies; a new column fails until named."""
    return _verdict(guard.minimisation(shop.engine(), shop.policy()))


@dg.asset_check(asset=analytics_zone, blocking=True)
def analyst_cannot_read_personal_columns(shop: ShopDatabase) -> dg.AssetCheckResult:
    """Acting as lifecycle_analyst, every personal raw column is refused and no closed schema opens."""
    return _verdict(guard.least_privilege(shop.engine(), shop.policy()))


@dg.asset_check(asset=analytics_zone, blocking=True)
def no_personal_columns_in_analytics(shop: ShopDatabase) -> dg.AssetCheckResult:
    """No analytics column is named like a personal column of the policy or a personal family."""
    return _verdict(guard.personal_columns(shop.engine(), shop.policy()))


@dg.asset_check(asset=analytics_zone, blocking=True)
def no_personal_patterns_in_analytics(shop: ShopDatabase) -> dg.AssetCheckResult:
    """No analytics text looks like an email, phone, card number or street address (Great Expectations)."""
    return _verdict(guard.personal_patterns(shop.engine(), load_key(Settings.from_env())))


@dg.asset_check(asset=analytics_zone, blocking=True)
def no_raw_values_in_analytics(shop: ShopDatabase) -> dg.AssetCheckResult:
    """No analytics value, nor a name, phone or email inside one, equals a personal raw value (keyed hashes)."""
    return _verdict(guard.raw_fingerprints(shop.engine(), shop.policy(), load_key(Settings.from_env())))


@dg.asset_check(asset=analytics_zone, blocking=True)
def published_cells_cover_k_customers(shop: ShopDatabase) -> dg.AssetCheckResult:
    """Every row of a published table covers at least analytics.min_customers_per_cell customers."""
    return _verdict(guard.small_cells(shop.engine(), shop.policy()))


@dg.asset_check(asset=analytics_zone, blocking=True)
def no_raw_values_in_run_history(context: dg.AssetCheckExecutionContext, shop: ShopDatabase) -> dg.AssetCheckResult:
    """Dagster's stored events of the last nightly run and of this one so far hold no personal raw value."""
    runs = guard.nightly_runs_to_scan(context.instance, context.run.run_id)
    return _verdict(guard.run_history(shop.engine(), shop.policy(), load_key(Settings.from_env()),
                                      context.instance, runs))


guard_assets = [analytics_zone]
guard_checks = [raw_columns_all_classified, analyst_cannot_read_personal_columns, no_personal_columns_in_analytics,
                no_personal_patterns_in_analytics, no_raw_values_in_analytics, published_cells_cover_k_customers,
                no_raw_values_in_run_history]
