"""Carrier hand-off assets: what each matched carrier may see, the files it receives, the proofs."""

import dagster as dg

from assets.check_results import as_asset_check_result
from assets.retention import purged_orders
from lifecycle.assertions import ASSERTS
from lifecycle.logistics.access import ensure_carrier_access
from lifecycle.logistics.checks import (
    check_carrier_isolation,
    check_columns,
    check_finished_orders_gone,
)
from lifecycle.logistics.files import EXPORT_PURPOSE, export_carrier_files
from lifecycle.logistics.handoff import refresh_handoff
from orchestration.resources import ExportFolder, ShopDatabase


# After the requests job's answers too (named by key: assets/requests.py imports retention, which
# names this one by key): an order erased on request leaves the hand-off and the carrier's file in
# the same run, not at the next night's refresh.
@dg.asset(
    group_name="logistics",
    kinds={"postgres"},
    owners=["team:data"],
    deps=[purged_orders, dg.AssetKey("handled_data_requests")],
)
def carrier_handoff(context: dg.AssetExecutionContext, shop: ShopDatabase) -> dg.MaterializeResult:
    """Orders awaiting delivery with only what their carrier needs, each carrier behind its role.

    Runs after the purge, so an order purged tonight leaves the hand-off tonight; and after the
    requests job's answers, so an order erased on request leaves it in the same run.
    """
    engine, policy = shop.engine(), shop.policy()
    access = ensure_carrier_access(engine, policy)
    report = refresh_handoff(
        engine,
        policy,
        run_id=context.run.run_id,
        on_batch=lambda r: context.log.info(
            f"batch {r.batches}: {r.inserted} new, {r.removed_total} removed so far"
        ),
    )
    if report.unmatched_carrier:
        context.log.warning(
            f"{report.unmatched_carrier} orders awaiting delivery name a carrier "
            "the policy does not list and are not handed off "
            f"(order ids {report.unmatched_sample_ids})"
        )
    return dg.MaterializeResult(
        metadata={
            **report.metadata(),
            **access.metadata(),
            "policy_version": policy.version,
            "policy_hash": policy.short_hash,
        }
    )


@dg.asset_check(
    asset=carrier_handoff, blocking=True, description=ASSERTS["handoff_has_only_allowed_columns"]
)
def handoff_has_only_allowed_columns(shop: ShopDatabase) -> dg.AssetCheckResult:
    """Compares the hand-off's columns with the allow-list; counts values in the left-out ones."""
    return as_asset_check_result(check_columns(shop.engine(), shop.policy()))


@dg.asset_check(
    asset=carrier_handoff, blocking=True, description=ASSERTS["no_handoff_row_for_finished_orders"]
)
def no_handoff_row_for_finished_orders(shop: ShopDatabase) -> dg.AssetCheckResult:
    """Orders that changed after the refresh began are counted and leave at the next refresh."""
    return as_asset_check_result(check_finished_orders_gone(shop.engine(), shop.policy()))


@dg.asset_check(
    asset=carrier_handoff,
    blocking=True,
    description=ASSERTS["carrier_roles_see_only_their_own_rows"],
)
def carrier_roles_see_only_their_own_rows(shop: ShopDatabase) -> dg.AssetCheckResult:
    """Connects as each carrier role; its probe rows are rolled back with the check's transaction."""
    return as_asset_check_result(check_carrier_isolation(shop.engine(), shop.policy()))


@dg.asset(group_name="logistics", kinds={"csv"}, owners=["team:data"], deps=[carrier_handoff])
def carrier_files(
    context: dg.AssetExecutionContext, shop: ShopDatabase, exports: ExportFolder
) -> dg.MaterializeResult:
    """Each file-taking carrier's pending deliveries as CSV with a manifest, replaced every run."""
    report = export_carrier_files(
        shop.engine(), shop.policy(), exports.folder(EXPORT_PURPOSE), run_id=context.run.run_id
    )
    return dg.MaterializeResult(metadata=report.metadata())


logistics_assets = [carrier_handoff, carrier_files]
logistics_checks = [
    handoff_has_only_allowed_columns,
    no_handoff_row_for_finished_orders,
    carrier_roles_see_only_their_own_rows,
]
