"""Sensors that tell a person when the nightly job failed, was missed, or left data behind."""

from datetime import datetime, timezone

import dagster as dg

from lifecycle import alerts, history
from lifecycle.alerts import AlertWebhook
from lifecycle.resources import ShopDatabase
from sensors.schedules import nightly_lifecycle


@dg.run_failure_sensor(
    name="nightly_lifecycle_failure_alert",
    # Runs started by the CLI (`lifecycle nightly`, a cron job) execute in process and carry no
    # code-location origin, which `monitored_jobs` matches on; so watch every run, keep the nightly.
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def nightly_lifecycle_failure_alert(
    context: dg.RunFailureSensorContext, shop: ShopDatabase, webhook: AlertWebhook
) -> None:
    """Records a failed nightly run in lifecycle.alerts and posts it to the webhook."""
    if context.dagster_run.job_name != nightly_lifecycle.name:
        return
    run_id = context.dagster_run.run_id
    run = history.run_summary(context.instance, run_id)
    alert = alerts.failed_run_alert(run, history.failed_steps(context.instance, run_id))
    alert_id = alerts.raise_alert(shop.engine(), alert, webhook)
    context.log.info(f"alert {alert_id} raised for failed run {run_id}" if alert_id else
                     f"run {run_id} was already alerted")


@dg.sensor(
    name="nightly_lifecycle_freshness_alert",
    minimum_interval_seconds=15 * 60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def nightly_lifecycle_freshness_alert(
    context: dg.SensorEvaluationContext, shop: ShopDatabase, webhook: AlertWebhook
) -> dg.SkipReason:
    """Alerts when no nightly run succeeded in 26 hours or orders stay overdue; retries delivery."""
    engine = shop.engine()
    freshness = alerts.assess_freshness(engine, shop.policy(), context.instance, datetime.now(timezone.utc))
    raised = [alerts.raise_alert(engine, alert, webhook) for alert in freshness.alerts()]
    alerts.deliver_pending(engine, webhook)
    new = [alert_id for alert_id in raised if alert_id is not None]
    return dg.SkipReason(freshness.summary() + (f"; raised alerts {new}" if new else ""))


alert_sensors = [nightly_lifecycle_failure_alert, nightly_lifecycle_freshness_alert]
