"""The leak guard's checks: each one's name (written only here), the sentence saying what it
asserts, and the scan that proves it.

The list is plain Python so `lifecycle guard` runs it without loading Dagster or the definitions;
assets/guard.py makes the blocking asset checks from the same list (same names, same sentences),
and the report explains each check with the same sentence. The run-history check is the one that
needs Dagster's instance: its name and sentence are here, its scan in orchestration/history_scan.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import NamedTuple

from sqlalchemy.engine import Engine

from lifecycle.checks import CheckResult
from lifecycle.guard import accepted, cells, minimisation, names, privilege, raw_values, values
from lifecycle.guard import exports as export_files
from lifecycle.guard.key import GuardKey
from lifecycle.policy import Policy
from lifecycle.sales import differencing

# (job engine, policy, key, reader engine or None for the default reader login) -> result
Scan = Callable[..., CheckResult]


class GuardCheck(NamedTuple):
    """A blocking check on analytics_zone: its name, what it asserts, and the scan that proves it."""

    name: str
    asserts: str
    scan: Scan

    def run(
        self, engine: Engine, policy: Policy, key: GuardKey, reader: Engine | None, today: date
    ) -> CheckResult:
        """The scan, with the findings the policy accepts on `today` shown but not failing."""
        result = self.scan(engine, policy, key, reader)
        return accepted.apply(result, policy.guard.accepted_findings, today)


# Compared with the raw zone in the same pass as RUN_HISTORY_CHECK in the nightly
# (orchestration/history_scan.py, raw_values_in_zone_and_run_history).
RAW_VALUES_CHECK = "no_raw_values_in_analytics"

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
        "Acting as lifecycle_analyst, every personal raw column is refused, no closed schema "
        "opens, and no view it can read reads a raw table with another role's rights.",
        lambda engine, policy, key, reader=None: privilege.analyst_access(engine, policy),
    ),
    GuardCheck(
        "no_personal_columns_in_analytics",
        "No analytics column is named like a personal column of the policy or a personal family.",
        lambda engine, policy, key, reader=None: names.personal_column_names(engine, policy),
    ),
    GuardCheck(
        "no_personal_patterns_in_analytics",
        "No analytics text looks like an email, phone, card number, street address or national id.",
        lambda engine, policy, key, reader=None: values.personal_value_patterns(
            engine, key, reader
        ),
    ),
    GuardCheck(
        RAW_VALUES_CHECK,
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

# The seventh check reads the run history (orchestration/history_scan.py makes its scan).
RUN_HISTORY_CHECK = "no_raw_values_in_run_history"
RUN_HISTORY_ASSERTS = (
    "Dagster's stored events and compute logs of the last nightly run and of this one so far "
    "hold no personal raw value."
)

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
