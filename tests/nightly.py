"""Runs the nightly job on a test shop, recorded in a test run history, as the CLI would."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets.retention import retention_assets, retention_checks
from lifecycle.settings import Settings
from orchestration import tags
from orchestration.resources import ShopDatabase
from sensors.schedules import nightly_lifecycle


def run_nightly(
    settings: Settings,
    instance: dg.DagsterInstance,
    trigger: str = "cli",
    policy_path: Path | None = None,
) -> dg.ExecuteInProcessResult:
    """One nightly_lifecycle run over the retention assets, tagged like a launch by `trigger`."""
    defs = dg.Definitions(
        assets=[*retention_assets],
        asset_checks=[*retention_checks],
        jobs=[nightly_lifecycle],
        resources={
            "shop": ShopDatabase(
                url=settings.database_url, policy_path=str(policy_path or settings.policy_path)
            )
        },
    )
    return defs.resolve_job_def("nightly_lifecycle").execute_in_process(
        instance=instance,
        tags=tags.trigger_tags(trigger),
        raise_on_error=False,
    )
