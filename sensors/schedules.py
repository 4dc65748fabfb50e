"""The nightly job and its schedule."""

import dagster as dg

from lifecycle.settings import Settings
from orchestration import names, tags

# In-process: every step is one or a few SQL statements, so a process per step (the default
# multiprocess executor) would cost more in start-up than the work itself (8.4 s vs 2.9 s here).
# Assets partitioned by sales day cannot share a run with unpartitioned ones: the job runs
# `refreshed_sales_volume` (yesterday and the changed days) and backfills run the partitions.
nightly_lifecycle = dg.define_asset_job(
    name=names.NIGHTLY_JOB,
    # Data requests are answered on demand (sensors/requests.py), not by the nightly job.
    selection=(
        dg.AssetSelection.all()
        - dg.AssetSelection.tag("lifecycle/partitions", "sales_days")
        - dg.AssetSelection.tag("lifecycle/on_demand", "true")
    ),
    executor_def=dg.in_process_executor,
    description="Purge due orders, erase them from disk, and publish what depends on it.",
)


def nightly_lifecycle_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """Runs the nightly job at LIFECYCLE_SCHEDULE_CRON (02:00) in LIFECYCLE_SCHEDULE_TIMEZONE.

    The run reads and records its policy when it starts (orchestration/resources.py), so the
    schedule only says who started it.
    """
    return dg.ScheduleDefinition(
        name="nightly_lifecycle_schedule",
        job=nightly_lifecycle,
        cron_schedule=settings.schedule_cron,
        execution_timezone=settings.schedule_timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        tags=tags.trigger_tags("schedule"),
    )
