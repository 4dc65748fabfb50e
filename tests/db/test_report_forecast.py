"""The purge forecast counts, day by day, exactly the orders the purge's own rule makes due."""

from datetime import UTC, datetime, timedelta

from lifecycle.retention import purge, standing
from tests.shop import add_case, add_delivered, add_order

MIDNIGHT = datetime(2026, 6, 1, tzinfo=UTC)
DAY, MINUTE = timedelta(days=1), timedelta(minutes=1)


def seed(engine):
    with engine.begin() as conn:
        add_delivered(conn, 1, MIDNIGHT - 29 * DAY + MINUTE)  # due 06-02 00:01
        add_delivered(conn, 2, MIDNIGHT - 29 * DAY - MINUTE)  # due 06-01 23:59
        add_delivered(conn, 3, MIDNIGHT - 20 * DAY)  # due 06-11
        add_order(
            conn, 4, "cancelled", MIDNIGHT - 30 * DAY, cancelled_at=MIDNIGHT - 25 * DAY
        )  # due 06-06
        add_order(conn, 5, "placed", MIDNIGHT - 80 * DAY)  # abandoned: due 06-11
        add_delivered(conn, 6, MIDNIGHT - 40 * DAY)  # a closed case restarts the window: 06-22
        add_case(conn, 60, 6, MIDNIGHT - 38 * DAY, closed_at=MIDNIGHT - 9 * DAY)
        add_delivered(conn, 7, MIDNIGHT - 25 * DAY)  # an open case: no date
        add_case(conn, 70, 7, MIDNIGHT - 24 * DAY)
        add_order(
            conn,
            8,
            "shipped",
            MIDNIGHT - 10 * DAY,
            paid_at=MIDNIGHT - 10 * DAY,
            shipped_at=MIDNIGHT - 9 * DAY,
        )  # in delivery: never due
        add_delivered(conn, 9, MIDNIGHT - 60 * DAY)  # due already: the backlog, not the forecast


def test_forecast_places_each_order_on_the_day_its_window_closes(engine, policy):
    seed(engine)
    as_of = MIDNIGHT - 2 * MINUTE
    forecast = standing.forecast_due(engine, policy, as_of, days=30)
    due = {day.isoformat(): n for day, n in forecast.items() if n}
    assert due == {
        "2026-06-01": 1,
        "2026-06-02": 1,
        "2026-06-06": 1,
        "2026-06-11": 2,
        "2026-06-22": 1,
    }
    assert len(forecast) == 31


def test_forecast_agrees_with_the_backlog_rule_at_every_midnight(engine, policy):
    seed(engine)
    forecast = standing.forecast_due(engine, policy, MIDNIGHT, days=30)
    base = standing.count_overdue(engine, policy, MIDNIGHT)
    running = 0
    for day, n in forecast.items():
        running += n
        end_of_day = datetime.combine(day + DAY, datetime.min.time(), UTC)
        assert standing.count_overdue(engine, policy, end_of_day - MINUTE) - base == running, day


def test_forecast_leaves_out_purged_orders(engine, policy):
    seed(engine)
    purge.run_purge(engine, policy, run_id="r1", as_of=MIDNIGHT + 12 * DAY)
    forecast = standing.forecast_due(engine, policy, MIDNIGHT + 12 * DAY, days=30)
    assert {day.isoformat(): n for day, n in forecast.items() if n} == {"2026-06-22": 1}
