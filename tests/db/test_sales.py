"""The published sales volume on real PostgreSQL: the k rule, dating, change capture, backfills."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from lifecycle import db
from lifecycle.policy import load_policy
from lifecycle.sales import capture, daily, rollup
from lifecycle.sales.capture import capture_signature, ensure_capture
from lifecycle.sales.charts import units_per_region
from lifecycle.sales.previews import day_preview
from lifecycle.sales.source import Source
from lifecycle.settings import PROJECT_DIR
from tests.conftest import AS_OF
from tests.shop import PERSONAL, add_order

DAY = timedelta(days=1)
YESTERDAY = date(2026, 5, 31)  # the last complete day at AS_OF (2026-06-01 12:00 UTC)


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def add_sale(
    conn,
    order_id: int,
    customer: int,
    placed_at: datetime,
    region: str | None = "SH",
    sku: str = "SKU-1",
    quantity: int = 1,
    price: str = "10.00",
    status: str = "delivered",
) -> None:
    """One order of one line: who bought how much of what, where it shipped, when it was placed."""
    add_order(conn, order_id, status, placed_at, customer_id=customer, ship_region=region)
    conn.execute(
        sa.text(
            "UPDATE shop.order_items SET sku = :sku, quantity = :q, unit_price = :p WHERE order_id = :o"
        ),
        {"sku": sku, "q": quantity, "p": price, "o": order_id},
    )


def customers_buy(
    conn, first_order: int, customers: list[int], day: date = YESTERDAY, **line
) -> int:
    """Each customer places one order on `day`; returns the next free order id."""
    for n, customer in enumerate(customers):
        add_sale(conn, first_order + n, customer, noon(day), **line)
    return first_order + len(customers)


def published(engine, day: date | None = None) -> dict[tuple, tuple]:
    """(date, sku, region) -> (orders, units, revenue, customers) as published."""
    where = "WHERE sales_date = :day" if day else ""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"SELECT sales_date, sku, region, orders, units, revenue, customers FROM analytics.sales_volume_daily {where}"
            ),
            {"day": day},
        ).all()
    return {(d, s, r): (o, u, float(rev), c) for d, s, r, o, u, rev, c in rows}


def built_by(engine) -> dict[date, str]:
    with engine.connect() as conn:
        return dict(
            conn.execute(sa.text("SELECT sales_date, run_id FROM lifecycle.sales_days")).all()
        )


def policy_with(policy_file, **analytics) -> object:
    body = ", ".join(f"{k}: {v}" for k, v in analytics.items())
    ack = "acknowledge: [k_of_one]\n" if analytics.get("min_customers_per_cell") == 1 else ""
    return load_policy(policy_file(f'version: "test"\n{ack}analytics: {{{body}}}\n'))


def refresh(engine, policy, run_id="night-1", as_of=AS_OF) -> daily.SalesBuild:
    return daily.refresh(engine, policy, run_id=run_id, as_of=as_of)


# ---------------------------------------------------------------- the k rule


def test_cell_of_exactly_k_customers_is_published_in_its_region(engine, policy):
    with engine.begin() as conn:
        customers_buy(conn, 1, [1, 2, 3, 4, 5], region="SH", quantity=2)
    build = refresh(engine, policy)
    assert published(engine) == {(YESTERDAY, "SKU-1", "SH"): (5, 10, 100.0, 5)}
    assert (
        build.total("units_published"),
        build.total("units_folded"),
        build.total("units_withheld"),
    ) == (10, 0, 0)


def test_cell_of_k_minus_1_customers_folds_and_alone_is_withheld_even_with_k_orders(engine, policy):
    with engine.begin() as conn:
        following = customers_buy(conn, 1, [1, 2, 3, 4], region="SH")
        add_sale(conn, following, 4, noon(YESTERDAY), region="SH")  # a 5th order, still 4 customers
    build = refresh(engine, policy)
    assert published(engine) == {}
    [day] = build.stats
    assert (day.units_total, day.units_published, day.units_withheld, day.rows_withheld) == (
        5,
        0,
        5,
        1,
    )


def test_small_cells_fold_into_other_and_publish_once_together_they_reach_k(engine, policy):
    with engine.begin() as conn:
        n = customers_buy(conn, 1, [1, 2], region="SH")
        n = customers_buy(conn, n, [3, 4, 5], region="BJ")
        customers_buy(conn, n, [6, 7, 8, 9, 10], region="GD")
    build = refresh(engine, policy)
    assert published(engine) == {
        (YESTERDAY, "SKU-1", "GD"): (5, 5, 50.0, 5),
        (YESTERDAY, "SKU-1", "OTHER"): (5, 5, 50.0, 5),
    }
    [day] = build.stats
    assert (day.units_folded, day.units_withheld, day.cells_folded) == (5, 0, 2)


def test_a_customer_in_two_folded_cells_is_counted_once(engine, policy):
    with engine.begin() as conn:
        # SKU-1: SH {1,2,3} + BJ {3,4}: five cell memberships but four people -> withheld.
        n = customers_buy(conn, 1, [1, 2, 3], region="SH", sku="SKU-1")
        n = customers_buy(conn, n, [3, 4], region="BJ", sku="SKU-1")
        # SKU-2: SH {1,2,3} + BJ {3,4,5}: five people -> OTHER published with 6 orders.
        n = customers_buy(conn, n, [1, 2, 3], region="SH", sku="SKU-2")
        customers_buy(conn, n, [3, 4, 5], region="BJ", sku="SKU-2")
    build = refresh(engine, policy)
    assert published(engine) == {(YESTERDAY, "SKU-2", "OTHER"): (6, 6, 60.0, 5)}
    assert build.total("units_withheld") == 5


def test_orders_without_a_region_are_never_published_under_a_region(engine, policy):
    with engine.begin() as conn:
        n = customers_buy(conn, 1, [1, 2, 3, 4, 5], region=None)
        customers_buy(conn, n, [6, 7, 8, 9, 10], region="")
    refresh(engine, policy)
    assert published(engine) == {(YESTERDAY, "SKU-1", "OTHER"): (10, 10, 100.0, 10)}


def test_a_smaller_k_from_the_policy_publishes_smaller_cells(engine, policy_file):
    with engine.begin() as conn:
        customers_buy(conn, 1, [1, 2], region="SH")
    refresh(engine, policy_with(policy_file, min_customers_per_cell=2))
    assert published(engine) == {(YESTERDAY, "SKU-1", "SH"): (2, 2, 20.0, 2)}


# ---------------------------------------------------------------- what counts as a sale, and when


def test_only_paid_shipped_and_delivered_orders_are_sales(engine, policy):
    with engine.begin() as conn:
        for n, status in enumerate(["paid", "shipped", "delivered", "delivered", "paid"], start=1):
            add_sale(conn, n, n, noon(YESTERDAY), status=status)
        add_sale(conn, 6, 6, noon(YESTERDAY), status="placed", quantity=7)
        add_sale(conn, 7, 7, noon(YESTERDAY), status="cancelled", quantity=7)
    refresh(engine, policy)
    assert published(engine) == {(YESTERDAY, "SKU-1", "SH"): (5, 5, 50.0, 5)}


def test_sales_date_is_placed_at_in_the_shop_time_zone_either_side_of_midnight(engine, policy_file):
    with engine.begin() as conn:
        add_sale(conn, 1, 1, datetime(2026, 5, 30, 15, 59, 59, tzinfo=UTC))  # 23:59:59 in Shanghai
        add_sale(conn, 2, 2, datetime(2026, 5, 30, 16, 0, 0, tzinfo=UTC))  # 00:00:00 in Shanghai
    refresh(engine, policy_with(policy_file, timezone="Asia/Shanghai", min_customers_per_cell=1))
    assert set(published(engine)) == {
        (date(2026, 5, 30), "SKU-1", "SH"),
        (date(2026, 5, 31), "SKU-1", "SH"),
    }
    refresh(
        engine, policy_with(policy_file, timezone="UTC", min_customers_per_cell=1), run_id="night-2"
    )
    assert published(engine) == {(date(2026, 5, 30), "SKU-1", "SH"): (2, 2, 20.0, 2)}


@pytest.fixture
def naive_orders(database_url):
    """A shop's own orders table whose placed_at has no time zone, mapped in the policy; an
    engine whose sessions read such values in UTC (PostgreSQL reads them in the session's zone)."""
    engine = db.create_engine(database_url)
    sa.event.listen(
        engine, "connect", lambda dbapi, _: dbapi.execute("SET TimeZone = 'UTC'") and None
    )
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE public.naive_orders (LIKE shop.orders)"))
        conn.execute(sa.text("ALTER TABLE public.naive_orders ALTER placed_at TYPE timestamp"))
    yield engine
    reference = load_policy(PROJECT_DIR / "policy.yaml")
    with engine.begin() as conn:  # the items' triggers read the mapped orders: back to shop's
        ensure_capture(conn, Source(reference), capture_signature(reference))
        conn.execute(sa.text("DROP TABLE public.naive_orders"))
    engine.dispose()


def test_a_placed_at_without_a_time_zone_is_dated_as_the_session_reads_it(
    engine, naive_orders, policy_file
):
    """Read as UTC by the session, 15:59:59 is the 30th in Shanghai and 16:00 the 31st: each line
    is labelled with the day whose range selected it. Taken as Shanghai time by `AT TIME ZONE`,
    both were labelled the 30th, the 31st's build published a row for the 30th, and the planning
    tables counted it in the wrong day."""
    with engine.begin() as conn:
        for n in (1, 2):  # the order lines, on orders of the reference table they refer to
            add_sale(conn, n, n, datetime(2026, 5, 30, tzinfo=UTC))
    with naive_orders.begin() as conn:
        conn.execute(
            sa.text("""INSERT INTO public.naive_orders (order_id, customer_id, status, placed_at,
                           ship_region) VALUES (1, 1, 'paid', :a, 'SH'), (2, 2, 'paid', :b, 'SH')"""),
            {"a": "2026-05-30 15:59:59", "b": "2026-05-30 16:00:00"},
        )
    policy = load_policy(
        policy_file(
            'version: "test"\nacknowledge: [k_of_one]\n'
            "analytics: {timezone: Asia/Shanghai, min_customers_per_cell: 1}\n"
            "raw: {orders: {table: public.naive_orders}}\n"
        )
    )
    refresh(naive_orders, policy)
    assert set(published(engine)) == {
        (date(2026, 5, 30), "SKU-1", "SH"),
        (date(2026, 5, 31), "SKU-1", "SH"),
    }
    with naive_orders.begin() as conn:
        src = Source(policy)
        rollup.load_lines(conn, src, None, date(2026, 5, 30), date(2026, 6, 1))
        lines = conn.execute(sa.text("SELECT sales_date FROM pg_temp.sales_lines ORDER BY 1"))
        assert lines.scalars().all() == [date(2026, 5, 30), date(2026, 5, 31)]


def test_a_change_written_in_another_time_zone_marks_the_day_the_builds_date_it(
    engine, naive_orders, policy_file
):
    """Lifecycle reads the naive placed_at 03:00 of the 30th as UTC: the 30th. An application
    whose sessions set Asia/Shanghai cancels that order; its trigger read the value as 19:00 UTC
    on the 29th, marked the 29th, and the 30th kept the cancelled order's units. Pinned to
    lifecycle's zone, the trigger marks the 30th."""
    with engine.begin() as conn:
        for n in (1, 2):
            add_sale(conn, n, n, datetime(2026, 5, 30, tzinfo=UTC))
    with naive_orders.begin() as conn:
        conn.execute(
            sa.text("""INSERT INTO public.naive_orders (order_id, customer_id, status, placed_at,
                           ship_region) VALUES (1, 1, 'paid', :a, 'SH'), (2, 2, 'paid', :a, 'SH')"""),
            {"a": "2026-05-30 03:00:00"},
        )
    policy = load_policy(
        policy_file(
            'version: "test"\nacknowledge: [k_of_one]\n'
            "analytics: {timezone: UTC, min_customers_per_cell: 1}\n"
            "raw: {orders: {table: public.naive_orders}}\n"
        )
    )
    refresh(naive_orders, policy, run_id="night-1")
    assert published(engine)[date(2026, 5, 30), "SKU-1", "SH"][1] == 2
    with naive_orders.begin() as conn:  # the shop's application, in its own zone
        conn.execute(sa.text("SET LOCAL TimeZone = 'Asia/Shanghai'"))
        conn.execute(
            sa.text("UPDATE public.naive_orders SET status = 'cancelled' WHERE order_id = 2")
        )

    build = refresh(naive_orders, policy, run_id="night-2")

    assert build.mode == "incremental" and date(2026, 5, 30) in build.days
    assert published(engine)[date(2026, 5, 30), "SKU-1", "SH"][1] == 1
    # Lifecycle's own sessions in another zone date naive values otherwise: capture is pinned
    # again, and everything is rebuilt.
    other = db.create_engine(str(naive_orders.url.render_as_string(hide_password=False)))
    sa.event.listen(
        other, "connect", lambda dbapi, _: dbapi.execute("SET TimeZone = 'Asia/Tokyo'") and None
    )
    try:
        again = refresh(other, policy, run_id="night-3")
    finally:
        other.dispose()
    assert again.mode == "full" and "capture" in again.reason


@pytest.fixture
def generated_status_orders(engine):
    """A shop's own orders table with its own status words, and a generated column that
    translates them into lifecycle's, as docs/policy.md shows."""
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE public.worded_orders (LIKE shop.orders)"))
        conn.execute(
            sa.text("""ALTER TABLE public.worded_orders ADD COLUMN lifecycle_status text
                       GENERATED ALWAYS AS (CASE status WHEN 'approved' THEN 'paid'
                                                 WHEN 'canceled' THEN 'cancelled'
                                                 ELSE status END) STORED""")
        )
    yield
    reference = load_policy(PROJECT_DIR / "policy.yaml")
    with engine.begin() as conn:  # the items' triggers read the mapped orders: back to shop's
        ensure_capture(conn, Source(reference), capture_signature(reference))
        conn.execute(sa.text("DROP TABLE public.worded_orders"))


def test_a_generated_status_column_is_captured_when_its_base_column_changes(
    engine, generated_status_orders, policy_file
):
    """The capture's UPDATE OF trigger names the mapped column, here a generated one: it fires
    when the shop's own column changes, so a cancellation in the shop's words rebuilds its day."""
    day = YESTERDAY - 5 * DAY
    with engine.begin() as conn:
        for n in (1, 2):
            add_sale(conn, n, n, noon(day))
        conn.execute(
            sa.text("""INSERT INTO public.worded_orders (order_id, customer_id, status, placed_at,
                           ship_region) VALUES (1, 1, 'approved', :a, 'SH'), (2, 2, 'approved', :a, 'SH')"""),
            {"a": noon(day)},
        )
    policy = load_policy(
        policy_file(
            'version: "test"\nacknowledge: [k_of_one]\nanalytics: {min_customers_per_cell: 1}\n'
            "raw: {orders: {table: public.worded_orders, columns: {status: lifecycle_status}}}\n"
        )
    )
    refresh(engine, policy, run_id="night-1")
    assert published(engine)[day, "SKU-1", "SH"][1] == 2
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE public.worded_orders SET status = 'canceled' WHERE order_id = 2")
        )

    build = refresh(engine, policy, run_id="night-2")

    assert build.mode == "incremental" and day in build.days
    assert published(engine)[day, "SKU-1", "SH"][1] == 1


def test_a_daylight_saving_day_has_23_hours_and_keeps_its_midnights(engine, policy_file):
    with engine.begin() as conn:
        # New York springs forward on 2026-03-08: that day runs 05:00 UTC to 04:00 UTC next day.
        for n, instant in enumerate(
            [
                datetime(2026, 3, 8, 4, 59, 59),
                datetime(2026, 3, 8, 5, 0),
                datetime(2026, 3, 9, 3, 59, 59),
                datetime(2026, 3, 9, 4, 0),
            ],
            start=1,
        ):
            add_sale(conn, n, n, instant.replace(tzinfo=UTC))
    refresh(engine, policy_with(policy_file, timezone="America/New_York", min_customers_per_cell=1))
    units = {day: u for (day, _, _), (_, u, _, _) in published(engine).items()}
    assert units == {date(2026, 3, 7): 1, date(2026, 3, 8): 2, date(2026, 3, 9): 1}


# ---------------------------------------------------------------- the nightly refresh


def test_next_nightly_picks_up_late_order_and_cancellation_and_leaves_other_days(
    engine, policy_file
):
    policy = policy_with(policy_file, min_customers_per_cell=1)
    first_night = AS_OF - DAY  # builds up to 2026-05-30
    with engine.begin() as conn:
        for n, day in enumerate(
            [date(2026, 5, 10), date(2026, 5, 20), date(2026, 5, 25), date(2026, 5, 30)], start=1
        ):
            add_sale(conn, n, n, noon(day), quantity=n)
    refresh(engine, policy, run_id="night-1", as_of=first_night)
    with engine.begin() as conn:
        add_sale(conn, 10, 10, noon(date(2026, 5, 20)), quantity=5)  # arrives late
        conn.execute(
            sa.text(
                "UPDATE shop.orders SET status = 'cancelled', cancelled_at = now() WHERE order_id = 1"
            )
        )
        add_sale(conn, 11, 11, noon(YESTERDAY))
    build = refresh(engine, policy, run_id="night-2")
    assert build.mode == "incremental"
    assert (
        build.days == [date(2026, 5, 10), date(2026, 5, 20), YESTERDAY] and build.changed_days == 2
    )
    rebuilt = {day for day, run in built_by(engine).items() if run == "night-2"}
    assert (
        rebuilt == {date(2026, 5, 10), date(2026, 5, 20), YESTERDAY} and len(built_by(engine)) == 22
    )
    units = {day: u for (day, _, _), (_, u, _, _) in published(engine).items()}
    assert units == {
        date(2026, 5, 20): 2 + 5,
        date(2026, 5, 25): 3,
        date(2026, 5, 30): 4,
        YESTERDAY: 1,
    }
    assert daily.pending_days(engine, policy) == []


def test_only_changes_that_move_a_figure_mark_a_day(engine, policy):
    with engine.begin() as conn:
        add_sale(conn, 1, 1, noon(date(2026, 5, 1)), status="paid")
        add_sale(conn, 2, 2, noon(date(2026, 5, 2)), status="placed")
    refresh(engine, policy)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE shop.orders SET receiver_name = 'Li Lei', purged_at = now() WHERE order_id = 1"
            )
        )
        conn.execute(
            sa.text("UPDATE shop.orders SET status = 'shipped' WHERE order_id = 1")
        )  # still a sale
        conn.execute(
            sa.text("UPDATE shop.orders SET status = 'cancelled' WHERE order_id = 2")
        )  # never a sale
    assert daily.pending_days(engine, policy) == []
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE shop.order_items SET quantity = 3 WHERE order_id = 1"))
    assert daily.pending_days(engine, policy) == [date(2026, 5, 1)]
    assert refresh(engine, policy, run_id="night-2").days == [date(2026, 5, 1), YESTERDAY]


def test_missed_nights_are_caught_up(engine, policy):
    with engine.begin() as conn:
        add_sale(conn, 1, 1, noon(date(2026, 5, 1)))
    refresh(engine, policy, run_id="night-1", as_of=AS_OF - 4 * DAY)
    build = refresh(engine, policy, run_id="night-2")
    assert build.days == [YESTERDAY - 3 * DAY, YESTERDAY - 2 * DAY, YESTERDAY - DAY, YESTERDAY]
    assert build.catch_up_days == 3


def test_a_repeated_refresh_changes_no_figure(engine, policy):
    with engine.begin() as conn:
        customers_buy(conn, 1, [1, 2, 3, 4, 5, 6], day=YESTERDAY - 3 * DAY)
    refresh(engine, policy)
    before = published(engine)
    again = refresh(engine, policy, run_id="night-2")
    assert published(engine) == before and before
    assert again.days == [YESTERDAY]


def test_changed_rules_or_a_truncated_shop_rebuild_every_day(engine, policy, policy_file):
    with engine.begin() as conn:
        customers_buy(conn, 1, [1, 2], day=YESTERDAY - 5 * DAY)
    assert refresh(engine, policy).mode == "full"
    assert refresh(engine, policy, run_id="night-2").mode == "incremental"
    build = refresh(engine, policy_with(policy_file, min_customers_per_cell=2), run_id="night-3")
    assert build.mode == "full" and "k=2" in build.reason and len(published(engine)) == 1
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE shop.order_items, shop.orders CASCADE"))
    build = refresh(engine, policy_with(policy_file, min_customers_per_cell=2), run_id="night-4")
    assert build.mode == "full" and build.reason == "a raw table was truncated"
    assert published(engine) == {} and build.days == []


def test_dropped_change_capture_is_reinstalled_and_everything_rebuilt(engine, policy):
    refresh(engine, policy)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER lifecycle_sales_orders_update ON shop.orders"))
    build = refresh(engine, policy, run_id="night-2")
    assert build.mode == "full" and "capture" in build.reason
    with engine.begin() as conn:
        add_sale(conn, 1, 1, noon(YESTERDAY - 9 * DAY), status="placed")
        conn.execute(sa.text("UPDATE shop.orders SET status = 'paid' WHERE order_id = 1"))
    assert daily.pending_days(engine, policy) == [YESTERDAY - 9 * DAY]


def test_capture_kept_from_its_locks_rebuilds_everything_and_says_so(engine, policy, monkeypatch):
    """Another session's open transaction on shop.orders: installing the triggers waited for it
    without a bound, and queued the shop's own queries behind the DDL. Now each attempt waits a
    bounded time; the build rebuilds every day without capture, says why, and the next build,
    once the lock is gone, installs it (and rebuilds everything once more)."""
    monkeypatch.setattr(capture, "CAPTURE_LOCK_TIMEOUT_MS", 200)
    monkeypatch.setattr(capture, "CAPTURE_ATTEMPTS", 2)
    monkeypatch.setattr(capture, "CAPTURE_PAUSE_S", 0.05)
    refresh(engine, policy, run_id="night-0")  # capture in place
    with engine.begin() as conn:
        customers_buy(conn, 1, [1, 2, 3, 4, 5], region="SH")
        conn.execute(sa.text("DROP TRIGGER lifecycle_sales_orders_update ON shop.orders"))
    # The build's sessions carry a lock_timeout of their own, as a DBA may set one: without the
    # bounded attempts the build fails on it after a minute instead of hanging the test.
    patient = db.create_engine(engine.url.render_as_string(hide_password=False))
    sa.event.listen(
        patient, "connect", lambda dbapi, _: dbapi.execute("SET lock_timeout = '60s'") and None
    )
    other = engine.connect()
    other.execute(sa.text("LOCK TABLE shop.orders IN ROW EXCLUSIVE MODE"))  # as a writer holds
    try:
        build = refresh(patient, policy, run_id="night-1")
    finally:
        other.rollback()
        other.close()
        patient.dispose()
    assert build.mode == "full" and build.capture_warning() == build.reason
    assert "could not be installed" in build.reason and "shop.orders" in build.reason
    assert published(engine) == {(YESTERDAY, "SKU-1", "SH"): (5, 5, 50.0, 5)}
    again = refresh(engine, policy, run_id="night-2")
    assert again.mode == "full" and not again.capture_unavailable
    assert refresh(engine, policy, run_id="night-3").mode == "incremental"


# ---------------------------------------------------------------- backfills and empty days


def test_backfill_rebuilds_exactly_its_range_and_leaves_later_changes_for_the_night(
    engine, policy_file
):
    policy = policy_with(policy_file, min_customers_per_cell=1)
    with engine.begin() as conn:
        add_sale(conn, 1, 1, noon(date(2026, 5, 1)))
    refresh(engine, policy, run_id="night-1")
    with engine.begin() as conn:
        add_sale(conn, 2, 2, noon(date(2026, 5, 20)))
        add_sale(conn, 3, 3, noon(date(2026, 5, 28)))
    build = daily.build_range(
        engine, policy, date(2026, 5, 18), date(2026, 5, 22), run_id="backfill", as_of=AS_OF
    )
    assert build.mode == "range" and build.days == [date(2026, 5, 18) + n * DAY for n in range(5)]
    assert {d for d, run in built_by(engine).items() if run == "backfill"} == set(build.days)
    assert set(published(engine)) == {
        (date(2026, 5, 1), "SKU-1", "SH"),
        (date(2026, 5, 20), "SKU-1", "SH"),
    }
    assert daily.pending_days(engine, policy) == [
        date(2026, 5, 28)
    ]  # waits for the nightly refresh
    assert refresh(engine, policy, run_id="night-2").days == [date(2026, 5, 28), YESTERDAY]


def test_a_first_backfill_builds_every_day_once_under_the_current_rules(engine, policy):
    with engine.begin() as conn:
        customers_buy(conn, 1, [1, 2, 3, 4, 5], day=date(2026, 5, 25))
    build = daily.build_range(
        engine, policy, date(2026, 5, 27), date(2026, 5, 28), run_id="backfill", as_of=AS_OF
    )
    assert (
        build.mode == "full" and build.days[0] == date(2026, 5, 25) and build.days[-1] == YESTERDAY
    )
    assert list(published(engine)) == [(date(2026, 5, 25), "SKU-1", "SH")]


def test_empty_days_are_built_with_zero_counts_and_no_rows(engine, policy):
    build = daily.build_range(
        engine, policy, date(2026, 4, 1), date(2026, 4, 3), run_id="backfill", as_of=AS_OF
    )
    assert [s.sales_date for s in build.stats] == [
        date(2026, 4, 1),
        date(2026, 4, 2),
        date(2026, 4, 3),
    ]
    assert all((s.source_lines, s.units_total, s.rows_published) == (0, 0, 0) for s in build.stats)
    assert published(engine) == {}
    night = refresh(engine, policy)  # catches up from 2026-04-04: all empty days too
    assert night.days[0] == date(2026, 4, 4) and night.days[-1] == YESTERDAY
    assert all(s.units_total == 0 for s in night.stats)


def test_days_that_have_not_ended_are_not_built(engine, policy):
    build = daily.build_range(
        engine, policy, YESTERDAY, YESTERDAY + 2 * DAY, run_id="backfill", as_of=AS_OF
    )
    assert build.days == [YESTERDAY]
    assert build.skipped_incomplete == [YESTERDAY + DAY, YESTERDAY + 2 * DAY]


# ---------------------------------------------------------------- nothing personal


def test_analytics_holds_no_identifier_or_personal_column(engine, policy):
    with engine.begin() as conn:
        customers_buy(conn, 1, [1, 2, 3, 4, 5, 6])
    build = refresh(engine, policy)
    with engine.connect() as conn:
        columns = set(
            conn.execute(
                sa.text(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = 'analytics'"
                )
            ).scalars()
        )
        texts = (
            conn.execute(
                sa.text("SELECT DISTINCT sku || ' ' || region FROM analytics.sales_volume_daily")
            )
            .scalars()
            .all()
        )
    assert columns and not columns & {
        "customer_id",
        "order_id",
        *policy.raw.orders.personal_columns,
    }
    shown = " ".join(
        [
            str(build.metadata()),
            *texts,
            repr(day_preview(engine, YESTERDAY)),
            repr(units_per_region(engine, YESTERDAY)),
        ]
    )
    assert not [value for value in PERSONAL.values() if value in shown]


NAIVE_READING = """
WITH line AS (
    SELECT (o.placed_at AT TIME ZONE 'UTC')::date AS day, i.sku, coalesce(nullif(o.ship_region, ''), 'OTHER') AS region,
           o.customer_id, o.order_id, i.quantity, i.quantity * i.unit_price AS amount
    FROM shop.orders o JOIN shop.order_items i ON i.order_id = o.order_id
    WHERE o.status IN ('paid', 'shipped', 'delivered') AND o.placed_at < :before
), cell AS (
    SELECT day, sku, region, count(DISTINCT customer_id) AS people FROM line GROUP BY day, sku, region
), placed AS (
    SELECT line.*, CASE WHEN cell.people >= :k AND line.region <> 'OTHER' THEN line.region ELSE 'OTHER' END AS shown
    FROM line JOIN cell USING (day, sku, region)
)
SELECT day, sku, shown, count(DISTINCT order_id), sum(quantity), sum(amount), count(DISTINCT customer_id)
FROM placed GROUP BY day, sku, shown HAVING count(DISTINCT customer_id) >= :k
"""


def test_published_table_equals_a_naive_reading_of_the_rule_on_a_synthetic_shop(
    engine, policy_file
):
    from lifecycle import synthetic

    synthetic.seed_shop(engine, orders=6000, seed=3, as_of=AS_OF)
    build = refresh(engine, policy_with(policy_file, min_customers_per_cell=2))
    with engine.connect() as conn:
        expected = {
            (d, s, r): (o, u, float(rev), c)
            for d, s, r, o, u, rev, c in conn.execute(
                sa.text(NAIVE_READING),
                {"k": 2, "before": datetime(2026, 6, 1, tzinfo=UTC)},
            )
        }
    regions = {region for _, _, region in expected}
    assert published(engine) == expected
    assert "OTHER" in regions and len(regions) > 5
    assert build.total("units_withheld") > 0 and build.total("units_folded") > 0


def test_the_preview_shows_the_latest_day_that_has_published_rows(engine, policy):
    with engine.begin() as conn:
        customers_buy(conn, 1, [1, 2, 3, 4, 5], day=YESTERDAY - 2 * DAY, sku="SKU-7", quantity=3)
    refresh(engine, policy)
    preview = day_preview(engine, YESTERDAY)
    assert preview.caption.startswith(f"{YESTERDAY - 2 * DAY} (nothing published on {YESTERDAY})")
    assert preview.table.rows == (("SKU-7", "SH", "5", "15", "150.00", "5"),)
