"""Leak guard: the analytics zone as it stands tonight, and the blocking checks that prove it holds
nothing personal and that analysts cannot reach the raw zone (lifecycle/guard/, docs/guard.md).

`GUARD_CHECKS` is the one place the checks are named: the asset checks below are made from it,
and `lifecycle guard` runs the same list. Anything that publishes from analytics (an export, a
dashboard refresh) should depend on `analytics_zone`, so a failed check stops it; the failure
also fails the nightly run.
"""

from collections.abc import Callable
from datetime import date
from typing import NamedTuple

import dagster as dg
from sqlalchemy.engine import Engine

from assets.check_results import as_asset_check_result
from assets.sales import product_line_summary, refreshed_sales_volume, weekly_demand
from lifecycle.checks import CheckResult
from lifecycle.guard import (
    accepted,
    cells,
    minimisation,
    names,
    privilege,
    raw_values,
    run_log,
    values,
    zone,
)
from lifecycle.guard.key import GuardKey
from lifecycle.guard.scan import scan as scan_of_a_check
from lifecycle.policy import Policy
from lifecycle.sales import differencing
from orchestration.history import nightly_runs_to_scan, run_log_texts
from orchestration.resources import GuardSecret, ShopDatabase

RUN_LOG = "dagster event log"  # how a run-history finding names the table it was found in

# (job engine, policy, key, reader engine or None for the default reader login) -> result
Scan = Callable[..., CheckResult]


class GuardCheck(NamedTuple):
    """A blocking check on analytics_zone: its name (written only here), what it asserts, and
    the scan that proves it."""

    name: str
    asserts: str
    scan: Scan

    def run(
        self, engine: Engine, policy: Policy, key: GuardKey, reader: Engine | None, today: date
    ) -> CheckResult:
        """The scan, with the findings the policy accepts on `today` shown but not failing."""
        result = self.scan(engine, policy, key, reader)
        return accepted.apply(result, policy.guard.accepted_findings, today)


# In the order the nightly runs them and `lifecycle guard` prints them.
GUARD_CHECKS = [
    GuardCheck(
        "raw_columns_all_classified",
        "The raw tables hold exactly the columns the policy classifies; a new column fails until "
        "named.",
        lambda engine, policy, key, reader=None: minimisation.unclassified_raw_columns(
            engine, policy
        ),
    ),
    GuardCheck(
        "analyst_cannot_read_personal_columns",
        "Acting as lifecycle_analyst, every personal raw column is refused and no closed schema "
        "opens.",
        lambda engine, policy, key, reader=None: privilege.analyst_access(engine, policy),
    ),
    GuardCheck(
        "no_personal_columns_in_analytics",
        "No analytics column is named like a personal column of the policy or a personal family.",
        lambda engine, policy, key, reader=None: names.personal_column_names(engine, policy),
    ),
    GuardCheck(
        "no_personal_patterns_in_analytics",
        "No analytics text looks like an email, phone, card number or street address (Great "
        "Expectations).",
        lambda engine, policy, key, reader=None: values.personal_value_patterns(
            engine, key, reader
        ),
    ),
    GuardCheck(
        "no_raw_values_in_analytics",
        "No analytics value, nor a name, phone or email inside one, equals a personal raw value "
        "(keyed hashes).",
        raw_values.raw_values_in_zone,
    ),
    GuardCheck(
        "published_cells_cover_k_customers",
        "Every row of a published table covers at least analytics.min_customers_per_cell "
        "customers.",
        lambda engine, policy, key, reader=None: cells.small_cells(engine, policy, reader),
    ),
    GuardCheck(
        "no_differencing_in_sales_tables",
        "No published sales row minus the rows of another sales table inside it leaves fewer than "
        "k customers.",
        lambda engine, policy, key, reader=None: differencing.differencing_remainders(
            engine, policy
        ),
    ),
]
# The seventh check reads the run history, so its scan is made for the runs it reads.
RUN_HISTORY_CHECK = "no_raw_values_in_run_history"
RUN_HISTORY_ASSERTS = (
    "Dagster's stored events of the last nightly run and of this one so far "
    "hold no personal raw value."
)


def run_history_check(instance: dg.DagsterInstance, run_ids: list[str]) -> GuardCheck:
    """The run-history check over the stored events of `run_ids`, in the shape of GUARD_CHECKS."""

    @scan_of_a_check
    def scan(
        engine: Engine, policy: Policy, key: GuardKey, reader: Engine | None = None
    ) -> CheckResult:
        texts = run_log_texts(instance, run_ids)
        result = run_log.raw_values_in_run_log(engine, policy, key, texts, log=RUN_LOG)
        result.scanned = {"runs": len(run_ids), **result.scanned}
        return result

    return GuardCheck(RUN_HISTORY_CHECK, RUN_HISTORY_ASSERTS, scan)


@dg.asset(
    group_name="guard",
    kinds={"postgres"},
    owners=["team:data"],
    deps=[refreshed_sales_volume, weekly_demand, product_line_summary],
)
def analytics_zone(shop: ShopDatabase) -> dg.MaterializeResult:
    """Every table and view in schema analytics tonight, whoever wrote it: what the checks
    inspect."""
    found = zone.zone_inventory(shop.engine())
    return dg.MaterializeResult(
        metadata={**found.metadata(), "relations": dg.MetadataValue.md(found.markdown())}
    )


def _asset_check(check: GuardCheck) -> dg.AssetChecksDefinition:
    @dg.asset_check(name=check.name, asset=analytics_zone, blocking=True, description=check.asserts)
    def guard_check(shop: ShopDatabase, guard_secret: GuardSecret) -> dg.AssetCheckResult:
        engine, today = shop.engine(), shop.as_of().date()
        reader = guard_secret.reader(engine)
        result = check.run(engine, shop.policy(), guard_secret.key(), reader, today)
        return as_asset_check_result(result)

    return guard_check


@dg.asset_check(
    name=RUN_HISTORY_CHECK, asset=analytics_zone, blocking=True, description=RUN_HISTORY_ASSERTS
)
def run_history_asset_check(
    context: dg.AssetCheckExecutionContext, shop: ShopDatabase, guard_secret: GuardSecret
) -> dg.AssetCheckResult:
    """Reads this instance's event log: the last finished nightly run's, and this run's so far."""
    runs = nightly_runs_to_scan(context.instance, context.run.run_id)
    check = run_history_check(context.instance, runs)
    today = shop.as_of().date()
    result = check.run(shop.engine(), shop.policy(), guard_secret.key(), None, today)
    return as_asset_check_result(result)


guard_assets = [analytics_zone]
guard_checks = [*(_asset_check(check) for check in GUARD_CHECKS), run_history_asset_check]
