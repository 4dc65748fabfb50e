"""The one place that assembles lifecycle's Dagster definitions (workspace.yaml loads it).

Settings are read from the environment once, here. Every secret reaches a resource as a
`dg.EnvVar`, which the UI shows by name only; a variable that is unset leaves the resource on its
local default (the embedded database, no webhook, the guard's key file).
"""

import dagster as dg

from assets.guard import guard_assets, guard_checks
from assets.logistics import logistics_assets, logistics_checks
from assets.requests import requests_assets, requests_checks
from assets.retention import retention_assets, retention_checks
from assets.sales import sales_assets, sales_checks
from lifecycle.settings import Settings
from orchestration.instance import keep_run_files_private
from orchestration.resources import AlertWebhook, ExportFolder, GuardSecret, ShopDatabase
from sensors.alerts import alert_sensors
from sensors.requests import data_requests_job, data_requests_sensor
from sensors.schedules import nightly_lifecycle, nightly_lifecycle_schedule


def _secret(name: str, value: str | None) -> dg.EnvVar | None:
    return dg.EnvVar(name) if value else None


def build_definitions(settings: Settings) -> dg.Definitions:
    """The project's assets, checks, jobs, schedules, sensors and resources for `settings`."""
    return dg.Definitions(
        assets=[
            *retention_assets,
            *logistics_assets,
            *sales_assets,
            *requests_assets,
            *guard_assets,
        ],
        asset_checks=[
            *retention_checks,
            *logistics_checks,
            *requests_checks,
            *guard_checks,
            *sales_checks,
        ],
        jobs=[nightly_lifecycle, data_requests_job],
        schedules=[nightly_lifecycle_schedule(settings)],
        sensors=[*alert_sensors, data_requests_sensor],
        resources={
            "shop": ShopDatabase(
                url=_secret("LIFECYCLE_DATABASE_URL", settings.database_url),
                embedded_data_dir=str(settings.embedded_data_dir),
                policy_path=str(settings.policy_path),
            ),
            "webhook": AlertWebhook(url=_secret("LIFECYCLE_WEBHOOK_URL", settings.webhook_url)),
            "exports": ExportFolder(path=str(settings.export_dir)),
            "guard_secret": GuardSecret(
                secret=_secret("LIFECYCLE_GUARD_SECRET", settings.guard_secret),
                key_file=str(settings.guard_key_file),
                reader_password=_secret(
                    "LIFECYCLE_GUARD_READER_PASSWORD", settings.guard_reader_password
                ),
            ),
        },
    )


# The code server and the run workers it starts (UI launches, schedule, sensor, queue) import this
# module: their compute logs are private from the first run.
keep_run_files_private()
defs = build_definitions(Settings.from_env())
