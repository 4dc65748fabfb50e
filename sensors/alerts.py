"""Sensors that tell a person when the nightly job failed, was missed, or left data behind."""

from datetime import UTC, datetime

import dagster as dg

from lifecycle import alerts
from orchestration import history, names
from orchestration.resources import AlertWebhook, ShopDatabase


@dg.run_failure_sensor(
    name="nightly_lifecycle_failure_alert",
    # Runs started by the CLI in process carry no code-location origin, which `monitored_jobs`
    # matches on; so watch every run and keep the nightly job's.
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def nightly_lifecycle_failure_alert(
    context: dg.RunFailureSensorContext, shop: ShopDatabase, webhook: AlertWebhook
) -> None:
    """Records a failed nightly run in lifecycle.alerts and posts it to the webhook."""
    if context.dagster_run.job_name != names.NIGHTLY_JOB:
        return
    run_id = context.dagster_run.run_id
    alert = alerts.failed_run_alert(history.run_summary(context.instance, run_id))
    alert_id = alerts.raise_alert(shop.engine(), alert, webhook)
    context.log.info(
        f"alert {alert_id} raised for failed run {run_id}"
        if alert_id
        else f"run {run_id} was already alerted"
    )


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
    freshness = alerts.assess_freshness(
        engine, shop.policy(), history.last_success(context.instance), datetime.now(UTC)
    )
    raised = [alerts.raise_alert(engine, alert, webhook) for alert in freshness.alerts()]
    alerts.deliver_pending(engine, webhook)
    new = [alert_id for alert_id in raised if alert_id is not None]
    return dg.SkipReason(freshness.summary() + (f"; raised alerts {new}" if new else ""))


alert_sensors = [nightly_lifecycle_failure_alert, nightly_lifecycle_freshness_alert]
