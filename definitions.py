"""The one place that assembles lifecycle's Dagster definitions (workspace.yaml loads it)."""

from __future__ import annotations

import dagster as dg

from assets.guard import guard_assets, guard_checks
from assets.logistics import logistics_assets, logistics_checks
from assets.requests import requests_assets, requests_checks
from assets.retention import retention_assets, retention_checks
from assets.sales import sales_assets
from lifecycle.alerts import AlertWebhook
from lifecycle.resources import ExportFolder, ShopDatabase
from lifecycle.settings import Settings
from sensors.alerts import alert_sensors
from sensors.requests import data_requests_job, data_requests_sensor
from sensors.schedules import nightly_lifecycle, nightly_lifecycle_schedule

settings = Settings.from_env()

defs = dg.Definitions(
    assets=[*retention_assets, *logistics_assets, *sales_assets, *requests_assets, *guard_assets],
    asset_checks=[*retention_checks, *logistics_checks, *requests_checks, *guard_checks],
    jobs=[nightly_lifecycle, data_requests_job],
    schedules=[nightly_lifecycle_schedule(settings)],
    sensors=[*alert_sensors, data_requests_sensor],
    resources={"shop": ShopDatabase(url=settings.database_url, policy_path=str(settings.policy_path)),
               "webhook": AlertWebhook(url=settings.webhook_url),
               "exports": ExportFolder(path=str(settings.export_dir))},
)
