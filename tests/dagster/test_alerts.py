"""Alerts: a failed run, a missed night and an overdue backlog are recorded and posted to the webhook."""

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
import sqlalchemy as sa

from lifecycle import alerts
from lifecycle.settings import Settings
from orchestration import history
from orchestration.resources import AlertWebhook, ShopDatabase
from sensors.alerts import nightly_lifecycle_failure_alert, nightly_lifecycle_freshness_alert
from tests.nightly import run_nightly
from tests.shop import add_delivered, leaked

NOW = datetime.now(UTC)
DAY, HOUR, MINUTE = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)


class Receiver:
    """A webhook on 127.0.0.1 that keeps every JSON body it is sent and answers `status`."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook?token=secret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def shop(dagster_settings):
    return ShopDatabase(
        url=dagster_settings.database_url, policy_path=str(dagster_settings.policy_path)
    )


def alert_rows(engine):
    with engine.connect() as conn:
        return (
            conn.execute(
                sa.text(
                    "SELECT kind, run_id, message, delivered_at, webhook_status, attempts FROM lifecycle.alerts ORDER BY alert_id"
                )
            )
            .mappings()
            .all()
        )


def failed_run(engine, dagster_settings, instance, policy_file):
    """A nightly run that fails on its first step: the policy names a column the shop lacks."""
    with engine.begin() as conn:
        add_delivered(conn, 1, NOW - 100 * DAY)
    bad = policy_file('version: "1"\nraw:\n  orders:\n    personal_columns: [receiver_nam]\n')
    result = run_nightly(dagster_settings, instance, policy_path=bad)
    assert not result.success
    return result


def failure_sensor_context(instance, result, shop, webhook):
    return dg.build_run_status_sensor_context(
        sensor_name="nightly_lifecycle_failure_alert",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"shop": shop, "webhook": webhook},
    ).for_run_failure()


def test_a_failed_nightly_run_is_recorded_and_posted_once(
    engine, dagster_settings, dagster_instance, policy_file, shop, receiver
):
    result = failed_run(engine, dagster_settings, dagster_instance, policy_file)
    webhook = AlertWebhook(url=receiver.url)
    context = failure_sensor_context(dagster_instance, result, shop, webhook)
    nightly_lifecycle_failure_alert(context)
    nightly_lifecycle_failure_alert(context)  # the sensor may see the same failure again

    [row] = alert_rows(engine)
    assert (row["kind"], row["run_id"], row["webhook_status"], row["attempts"]) == (
        "run_failed",
        result.run_id,
        "http 200",
        1,
    )
    assert row["delivered_at"] is not None
    assert "failed steps: due_orders (Failure)" in row["message"]
    [body] = receiver.bodies
    assert (body["kind"], body["run_id"], body["message"]) == (
        "run_failed",
        result.run_id,
        row["message"],
    )
    assert body["text"].startswith("[lifecycle] run_failed: nightly run ")


def test_a_sensor_tick_catches_a_failed_run_started_by_the_cli(
    engine, dagster_settings, dagster_instance, policy_file, shop, receiver
):
    webhook = AlertWebhook(url=receiver.url)
    # As the daemon evaluates it: inside a repository, which the in-process run does not name.
    repository = dg.Definitions(
        sensors=[nightly_lifecycle_failure_alert], resources={"shop": shop, "webhook": webhook}
    ).get_repository_def()

    def tick(cursor):
        context = dg.build_sensor_context(
            instance=dagster_instance,
            cursor=cursor,
            repository_def=repository,
            repository_name=repository.name,
            resources={"shop": shop, "webhook": webhook},
        )
        return nightly_lifecycle_failure_alert.evaluate_tick(context)

    started = tick(None)  # the first tick only marks where the history ends
    result = failed_run(
        engine, dagster_settings, dagster_instance, policy_file
    )  # in process, as the CLI runs it
    tick(started.cursor)
    [row] = alert_rows(engine)
    assert (row["kind"], row["run_id"]) == ("run_failed", result.run_id)
    assert [body["run_id"] for body in receiver.bodies] == [result.run_id]


def test_a_failed_run_of_another_job_is_not_a_nightly_alert(
    engine, dagster_instance, shop, receiver
):
    @dg.asset
    def broken():
        raise RuntimeError("boom")

    result = dg.materialize([broken], instance=dagster_instance, raise_on_error=False)
    assert not result.success
    nightly_lifecycle_failure_alert(
        failure_sensor_context(dagster_instance, result, shop, AlertWebhook(url=receiver.url))
    )
    assert alert_rows(engine) == [] and receiver.bodies == []


def test_an_alert_carries_no_personal_value(
    engine, dagster_settings, dagster_instance, policy_file, shop, receiver
):
    result = failed_run(engine, dagster_settings, dagster_instance, policy_file)
    nightly_lifecycle_failure_alert(
        failure_sensor_context(dagster_instance, result, shop, AlertWebhook(url=receiver.url))
    )
    posted = json.dumps(receiver.bodies)
    assert receiver.bodies
    assert not leaked(posted)


def test_a_webhook_that_is_down_loses_nothing(
    engine, dagster_settings, dagster_instance, policy_file, shop, receiver
):
    result = failed_run(engine, dagster_settings, dagster_instance, policy_file)
    receiver.status = 503
    webhook = AlertWebhook(url=receiver.url)
    nightly_lifecycle_failure_alert(failure_sensor_context(dagster_instance, result, shop, webhook))
    [row] = alert_rows(engine)
    assert row["delivered_at"] is None and row["webhook_status"] == "http 503"

    receiver.status = 200
    assert alerts.deliver_pending(engine, webhook) == 1
    [row] = alert_rows(engine)
    assert row["delivered_at"] is not None and row["attempts"] == 2
    assert [b["run_id"] for b in receiver.bodies] == [result.run_id, result.run_id]


def test_an_unreachable_webhook_is_named_by_error_class_not_by_url(engine):
    webhook = AlertWebhook(url="http://127.0.0.1:9/hook?token=secret", timeout_seconds=2)
    alerts.raise_alert(
        engine, alerts.Alert(kind="overdue_backlog", dedupe_key="k", message="3 orders"), webhook
    )
    [row] = alert_rows(engine)
    assert row["delivered_at"] is None
    assert row["webhook_status"].startswith("error: ") and "secret" not in row["webhook_status"]


def test_without_a_webhook_alerts_are_still_recorded(engine):
    alerts.raise_alert(
        engine, alerts.Alert(kind="nightly_stale", dedupe_key="k", message="m"), AlertWebhook()
    )
    [row] = alert_rows(engine)
    assert (row["kind"], row["webhook_status"], row["attempts"]) == (
        "nightly_stale",
        "no webhook configured",
        0,
    )


def test_no_successful_run_in_26_hours_is_stale(engine, dagster_settings, dagster_instance, policy):
    result = run_nightly(dagster_settings, dagster_instance)
    assert result.success
    fresh = alerts.assess_freshness(engine, policy, history.last_success(dagster_instance), NOW)
    finished = fresh.last_success_at
    assert fresh.last_success.run_id == result.run_id
    just_inside = alerts.assess_freshness(
        engine, policy, history.last_success(dagster_instance), finished + 26 * HOUR - MINUTE
    )
    just_outside = alerts.assess_freshness(
        engine, policy, history.last_success(dagster_instance), finished + 26 * HOUR + MINUTE
    )
    assert (fresh.stale, just_inside.stale, just_outside.stale) == (False, False, True)
    [alert] = just_outside.alerts()
    assert alert.kind == "nightly_stale" and result.run_id in alert.message


def test_orders_overdue_longer_than_26_hours_raise_a_backlog_alert(
    engine, dagster_instance, policy
):
    with engine.begin() as conn:
        add_delivered(conn, 1, NOW - 30 * DAY - 26 * HOUR - MINUTE)  # due for just over 26 hours
        add_delivered(
            conn, 2, NOW - 30 * DAY - 26 * HOUR + MINUTE
        )  # due, but a night may not have passed
    freshness = alerts.assess_freshness(engine, policy, history.last_success(dagster_instance), NOW)
    assert freshness.overdue == 1
    kinds = sorted(alert.kind for alert in freshness.alerts())
    assert kinds == ["nightly_stale", "overdue_backlog"]  # and no run ever succeeded


def test_freshness_sensor_records_and_posts_what_is_wrong_once_a_day(
    engine, dagster_instance, shop, receiver
):
    with engine.begin() as conn:
        add_delivered(conn, 1, NOW - 40 * DAY)
    webhook = AlertWebhook(url=receiver.url)
    for _ in range(2):
        context = dg.build_sensor_context(
            instance=dagster_instance, resources={"shop": shop, "webhook": webhook}
        )
        outcome = nightly_lifecycle_freshness_alert(context)
    assert "STALE" in outcome.skip_message and "overdue past grace: 1" in outcome.skip_message
    assert sorted(row["kind"] for row in alert_rows(engine)) == ["nightly_stale", "overdue_backlog"]
    assert sorted(body["kind"] for body in receiver.bodies) == ["nightly_stale", "overdue_backlog"]


def test_freshness_sensor_is_quiet_after_a_good_night(
    engine, dagster_settings, dagster_instance, shop, receiver
):
    with engine.begin() as conn:
        add_delivered(conn, 1, NOW - 40 * DAY)
    assert run_nightly(dagster_settings, dagster_instance).success
    context = dg.build_sensor_context(
        instance=dagster_instance,
        resources={"shop": shop, "webhook": AlertWebhook(url=receiver.url)},
    )
    outcome = nightly_lifecycle_freshness_alert(context)
    assert outcome.skip_message.startswith("fresh:")
    assert alert_rows(engine) == [] and receiver.bodies == []


def test_both_alert_sensors_are_defined_running_with_the_webhook_from_the_environment():
    from definitions import build_definitions

    with_hook = build_definitions(
        Settings.from_env({"LIFECYCLE_WEBHOOK_URL": "http://127.0.0.1:9/hook"})
    )
    for name in ("nightly_lifecycle_failure_alert", "nightly_lifecycle_freshness_alert"):
        sensor = with_hook.resolve_sensor_def(name)
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert {"shop", "webhook"} <= sensor.required_resource_keys
    assert with_hook.resources["webhook"].url == dg.EnvVar("LIFECYCLE_WEBHOOK_URL")
    assert build_definitions(Settings.from_env({})).resources["webhook"].url is None
