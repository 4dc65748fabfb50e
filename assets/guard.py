"""Leak guard: the analytics zone as it stands tonight, and the blocking checks that prove it holds
nothing personal and that analysts cannot reach the raw zone (lifecycle/guard/, docs/guard.md).

The checks are named in the Dagster-free list lifecycle/guard/checks.py (`GUARD_CHECKS`): the
asset checks below are made from it, and `lifecycle guard` runs the same list. Anything that
publishes from analytics (an export, a dashboard refresh) should depend on `analytics_zone`, so a
failed check stops it; the failure also fails the nightly run.
"""

from collections.abc import Iterator
from datetime import timedelta

import dagster as dg

from assets.check_results import as_asset_check_result
from assets.metadata import compact, table
from assets.sales import PRODUCT_LINE_SUMMARY, WEEKLY_DEMAND, refreshed_sales_volume
from lifecycle.guard import changes, zone
from lifecycle.guard.checks import (
    EXPORTS_ASSERTS,
    EXPORTS_CHECK,
    GUARD_CHECKS,
    RAW_VALUES_CHECK,
    RUN_HISTORY_ASSERTS,
    RUN_HISTORY_CHECK,
    GuardCheck,
    exports_check,
)
from lifecycle.requests.exports import EXPORTS_SUBDIR
from orchestration.history_scan import raw_values_in_zone_and_run_history, run_history_check
from orchestration.resources import ExportFolder, GuardSecret, ShopDatabase
from orchestration.step_tail import StepTail


@dg.asset(
    group_name="guard",
    kinds={"postgres"},
    owners=["team:data"],
    deps=[refreshed_sales_volume, WEEKLY_DEMAND, PRODUCT_LINE_SUMMARY],
)
def analytics_zone(shop: ShopDatabase) -> dg.MaterializeResult:
    """Every table and view in schema analytics tonight, whoever wrote it: what the checks
    inspect."""
    found = zone.zone_inventory(shop.engine())
    return dg.MaterializeResult(
        metadata={**compact(found.metadata()), "relations": table(found.table())}
    )


def _asset_check(check: GuardCheck) -> dg.AssetChecksDefinition:
    @dg.asset_check(name=check.name, asset=analytics_zone, blocking=True, description=check.asserts)
    def guard_check(shop: ShopDatabase, guard_secret: GuardSecret) -> dg.AssetCheckResult:
        engine, night, policy = shop.engine(), shop.as_of(), shop.policy()
        reader = guard_secret.reader(engine)
        full_every = timedelta(days=policy.guard.full_scan_every_days)
        with changes.incremental(night, full_every):  # the nightly reads what changed
            result = check.run(engine, policy, guard_secret.key(), reader, night.date())
        return as_asset_check_result(result)

    return guard_check


# The executor starts the ready step of highest priority first (0 unless tagged).
PRIORITY_TAG = "dagster/priority"
LAST = -100

_RAW_VALUES = next(check for check in GUARD_CHECKS if check.name == RAW_VALUES_CHECK)


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            RAW_VALUES_CHECK, asset=analytics_zone, blocking=True, description=_RAW_VALUES.asserts
        ),
        dg.AssetCheckSpec(
            RUN_HISTORY_CHECK, asset=analytics_zone, blocking=True, description=RUN_HISTORY_ASSERTS
        ),
    ],
    can_subset=True,
    # Started when no other step of the run is ready: the run history it compares then holds
    # nearly everything the night writes, so little is left for the next night to meet first.
    op_tags={PRIORITY_TAG: str(LAST)},
)
def raw_value_checks(
    context: dg.AssetCheckExecutionContext, shop: ShopDatabase, guard_secret: GuardSecret
) -> Iterator[dg.AssetCheckResult]:
    """Analytics and this instance's run history (what was written since the last clean scan: the
    first time, the last finished nightly run's, and this run's so far) against the raw zone's
    personal values, hashed once for both checks. One step, as hashing every distinct raw value is
    the night's largest guard cost; each check can still be run alone."""
    engine, night, policy = shop.engine(), shop.as_of(), shop.policy()
    key, reader, today = guard_secret.key(), guard_secret.reader(engine), night.date()
    selected = {check_key.name for check_key in context.selected_asset_check_keys}
    full_every = timedelta(days=policy.guard.full_scan_every_days)
    with changes.incremental(night, full_every):  # the nightly reads what changed
        if selected == {RAW_VALUES_CHECK, RUN_HISTORY_CHECK}:
            results = raw_values_in_zone_and_run_history(
                context.instance,
                context.run.run_id,
                engine,
                policy,
                key,
                reader,
                today,
                _tail(context),
            )
            found = dict(zip((RAW_VALUES_CHECK, RUN_HISTORY_CHECK), results, strict=True))
        elif RAW_VALUES_CHECK in selected:
            found = {RAW_VALUES_CHECK: _RAW_VALUES.run(engine, policy, key, reader, today)}
        else:
            history = run_history_check(context.instance, current_run_id=context.run.run_id)
            found = {RUN_HISTORY_CHECK: history.run(engine, policy, key, None, today)}
    for name, result in found.items():
        yield as_asset_check_result(result, check_name=name)


def _tail(context: dg.AssetCheckExecutionContext) -> StepTail:
    """The names in the events Dagster writes after this step's comparison."""
    return StepTail(
        job=context.run.job_name,
        step=context.op_def.name,
        outputs=tuple(output.name for output in context.op_def.output_defs),
        checks=tuple(
            (check.name, check.asset_key.to_user_string())
            for check in context.selected_asset_check_keys
        ),
    )


@dg.asset_check(
    name=EXPORTS_CHECK, asset=analytics_zone, blocking=True, description=EXPORTS_ASSERTS
)
def exports_asset_check(
    shop: ShopDatabase, exports: ExportFolder, guard_secret: GuardSecret
) -> dg.AssetCheckResult:
    """Looks at the access exports' modes, places and ages; never opens one."""
    check = exports_check(exports.folder(EXPORTS_SUBDIR), shop.as_of())
    result = check.run(shop.engine(), shop.policy(), guard_secret.key(), None, shop.as_of().date())
    return as_asset_check_result(result)


guard_assets = [analytics_zone]
guard_checks = [
    *(_asset_check(check) for check in GUARD_CHECKS if check.name != RAW_VALUES_CHECK),
    raw_value_checks,
]
# Apart, as it needs the export folder too: the side stores the guard looks at besides the database.
side_store_checks = [exports_asset_check]
