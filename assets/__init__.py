"""Dagster assets and asset checks: thin declarations over lifecycle/."""

import warnings

import dagster as dg

# `sales_volume_daily` needs `backfill_policy=single_run()` (a UI backfill of a range is one
# set-based run, not one run per day); Dagster 1.13 flags that parameter as beta on every import,
# which put a warning with a file path in front of every command's output. Only that one warning
# is silenced, here, before any asset module is imported; any other BetaWarning still shows.
warnings.filterwarnings(
    "ignore", message=r"Parameter `backfill_policy` of function `asset`", category=dg.BetaWarning
)
