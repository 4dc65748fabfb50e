"""Retention assets: which orders are due, clearing them, and erasing them from disk."""

import dagster as dg

from assets.check_results import as_asset_check_result
from assets.metadata import compact
from lifecycle.assertions import ASSERTS
from lifecycle.retention import backlog, erasure, purge, standing
from orchestration import names
from orchestration.resources import ShopDatabase


@dg.asset(group_name="retention", kinds={"postgres"}, owners=["team:data"])
def due_orders(context: dg.AssetExecutionContext, shop: ShopDatabase) -> dg.MaterializeResult:
    """Every order classified against the policy: due, kept by a case, in service, stale, anomalous."""
    policy = shop.policy()
    # The cleared orders are not counted here: that reads the history (`lifecycle due` does).
    summary = standing.summarize(shop.engine(), policy, shop.as_of(), count_cleared=False)
    if summary.anomaly_total:
        context.log.warning(
            f"{summary.anomaly_total} orders cannot be judged and are kept: {summary.anomalies}"
        )
    return dg.MaterializeResult(metadata=compact(summary.metadata(policy)))


@dg.asset(group_name="retention", kinds={"postgres"}, owners=["team:data"], deps=[due_orders])
def purged_orders(context: dg.AssetExecutionContext, shop: ShopDatabase) -> dg.MaterializeResult:
    """Clears the personal fields of every order whose after-sales cycle has ended."""
    report = purge.run_purge(
        shop.engine(),
        shop.policy(),
        run_id=context.run.run_id,
        as_of=shop.as_of(),
        on_batch=lambda r: context.log.info(f"batch {r.batches}: {r.purged} orders purged so far"),
    )
    if warning := report.lock_warning():
        context.log.warning(warning)
    return dg.MaterializeResult(metadata=compact(report.metadata()))


@dg.asset_check(asset=purged_orders, blocking=True, description=ASSERTS["no_overdue_personal_data"])
def no_overdue_personal_data(shop: ShopDatabase) -> dg.AssetCheckResult:
    """Counts the orders still due after the purge, at the run's instant."""
    overdue = standing.count_overdue(shop.engine(), shop.policy(), shop.as_of())
    return dg.AssetCheckResult(passed=overdue == 0, metadata={"overdue_orders": overdue})


@dg.asset_check(
    asset=purged_orders, blocking=True, description=ASSERTS["cleared_orders_hold_no_personal_data"]
)
def cleared_orders_hold_no_personal_data(shop: ShopDatabase) -> dg.AssetCheckResult:
    """Reads the cleared orders' personal columns for anything left (counts only)."""
    return as_asset_check_result(standing.values_left_after_clear(shop.engine(), shop.policy()))


# After the carrier hand-off refresh too (assets/logistics.py), so rows it removed tonight are
# rewritten out of its data files tonight; after the data requests' erasures too (assets/requests.py:
# the nightly finishing pass, and the requests job's answers). Named by key: those modules import this one.
@dg.asset(
    group_name="retention",
    kinds={"postgres"},
    owners=["team:data"],
    deps=[
        purged_orders,
        dg.AssetKey("carrier_handoff"),
        dg.AssetKey("finished_erasure_requests"),
        dg.AssetKey("handled_data_requests"),
    ],
    # One rewrite at a time on the shop's server, whichever job (nightly, data requests) runs it.
    pool=names.SHOP_REWRITE_POOL,
)
def erased_purged_storage(
    context: dg.AssetExecutionContext, shop: ShopDatabase
) -> dg.MaterializeResult:
    """Rewrites purged tables so cleared values leave the data files, not just the visible rows."""
    report = erasure.erase_purged_storage(shop.engine(), shop.policy(), run_id=context.run.run_id)
    context.log.info(report.reason)
    # Where the time went (waiting, each rewrite, pg_statistic), a line a step: one line naming
    # tonight's set of partitions would be a text the guard has never compared (provenance.py).
    for step, seconds in report.step_seconds.items():
        context.log.info(f"erasure step {step}: {seconds:.2f} s")
    return dg.MaterializeResult(metadata=report.metadata())


# Not blocking: an erasure that waits for an old snapshot is normal; only an overdue one alerts.
@dg.asset_check(
    asset=erased_purged_storage, blocking=False, description=ASSERTS["erasure_within_deadline"]
)
def erasure_within_deadline(shop: ShopDatabase) -> dg.AssetCheckResult:
    """A wait shorter than the deadline is normal and passes; only an overdue table fails."""
    return as_asset_check_result(backlog.erasure_deadline(shop.engine(), shop.policy()))


retention_assets = [due_orders, purged_orders, erased_purged_storage]
retention_checks = [
    no_overdue_personal_data,
    cleared_orders_hold_no_personal_data,
    erasure_within_deadline,
]
