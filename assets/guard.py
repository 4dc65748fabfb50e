"""Leak guard: the analytics zone as it stands tonight, and the blocking checks that prove it holds
nothing personal and that analysts cannot reach the raw zone (lifecycle/guard/, docs/guard.md).

`GUARD_CHECKS` is the one place the checks are named: the asset checks below are made from it,
and `lifecycle guard` runs the same list. Anything that publishes from analytics (an export, a
dashboard refresh) should depend on `analytics_zone`, so a failed check stops it; the failure
also fails the nightly run.
"""

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import dagster as dg
from sqlalchemy.engine import Engine

from assets.check_results import as_asset_check_result
from assets.metadata import compact
from assets.sales import product_line_summary, refreshed_sales_volume, weekly_demand
from lifecycle.checks import CheckResult
from lifecycle.guard import (
    accepted,
    cells,
    changes,
    minimisation,
    names,
    positions,
    privilege,
    raw_values,
    run_log,
    values,
    zone,
)
from lifecycle.guard import exports as export_files
from lifecycle.guard.key import GuardKey
from lifecycle.guard.scan import scan as scan_of_a_check
from lifecycle.policy import Policy
from lifecycle.requests.exports import EXPORTS_SUBDIR
from lifecycle.sales import differencing
from orchestration.history_since import history_since, read
from orchestration.resources import ExportFolder, GuardSecret, ShopDatabase

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
    "Dagster's stored events and compute logs of the last nightly run and of this one so far "
    "hold no personal raw value."
)


def run_history_check(
    instance: dg.DagsterInstance,
    run_ids: list[str] | None = None,
    current_run_id: str | None = None,
) -> GuardCheck:
    """The run-history check in the shape of GUARD_CHECKS: over the stored events and compute logs
    of `run_ids` whole, or (None) incrementally, of what was written since the last clean scan,
    whose positions it saves when it passes."""

    @scan_of_a_check
    def scan(
        engine: Engine, policy: Policy, key: GuardKey, reader: Engine | None = None
    ) -> CheckResult:
        if run_ids is not None:
            new = read(instance, run_ids, {})
        else:
            last = positions.last_scanned_at(engine, positions.RUN_HISTORY)
            new = history_since(
                instance,
                last,
                lambda ids: positions.positions(engine, positions.RUN_HISTORY, ids),
                current_run_id,
            )
        started = datetime.now(UTC)
        result = run_log.raw_values_in_run_log(engine, policy, key, new.texts, log=RUN_LOG)
        result.scanned = {"runs": len(new.run_ids), "events": new.events, **result.scanned}
        if run_ids is None and result.passed and new.reached:
            positions.save(engine, positions.RUN_HISTORY, new.reached, started)
        return result

    return GuardCheck(RUN_HISTORY_CHECK, RUN_HISTORY_ASSERTS, scan)


EXPORTS_CHECK = "access_exports_private_and_on_time"
EXPORTS_ASSERTS = (
    "Access exports are 0600 files in 0700 folders, inside the export folder, and deleted once "
    "requests.export_retention_days has passed."
)


def exports_check(folder: Path, as_of: datetime) -> GuardCheck:
    """The access-export check over `folder` (the requests' export folder), in the shape of
    GUARD_CHECKS."""

    def scan(
        engine: Engine, policy: Policy, key: GuardKey, reader: Engine | None = None
    ) -> CheckResult:
        return export_files.access_exports(folder, policy, as_of)

    return GuardCheck(EXPORTS_CHECK, EXPORTS_ASSERTS, scan)


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
        metadata={**compact(found.metadata()), "relations": dg.MetadataValue.md(found.markdown())}
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


@dg.asset_check(
    name=RUN_HISTORY_CHECK, asset=analytics_zone, blocking=True, description=RUN_HISTORY_ASSERTS
)
def run_history_asset_check(
    context: dg.AssetCheckExecutionContext, shop: ShopDatabase, guard_secret: GuardSecret
) -> dg.AssetCheckResult:
    """Reads this instance's event log and compute logs: what was written since the last clean
    scan (the first time, the last finished nightly run's, and this run's so far)."""
    check = run_history_check(context.instance, current_run_id=context.run.run_id)
    today = shop.as_of().date()
    result = check.run(shop.engine(), shop.policy(), guard_secret.key(), None, today)
    return as_asset_check_result(result)


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
guard_checks = [*(_asset_check(check) for check in GUARD_CHECKS), run_history_asset_check]
# Apart, as it needs the export folder too: the side stores the guard looks at besides the database.
side_store_checks = [exports_asset_check]
