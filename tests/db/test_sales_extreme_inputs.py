"""Inputs a real shop's rows can hold, or an adversary can type, that failed the whole sales build
or published a figure it should not: a revenue past 10^12, returns that bring a window's units to
zero, labels too long to key a row by, lines of quantity zero, quantities sold by weight. Each now
builds, and a database error the build still meets is reported without the statement or the
row."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest
import sqlalchemy as sa

from lifecycle.guard.cells import small_cells
from lifecycle.policy import load_policy
from lifecycle.sales import daily, planning
from lifecycle.sales.capture import capture_signature, ensure_capture
from lifecycle.sales.daily import SalesError
from lifecycle.sales.differencing import differencing_remainders
from lifecycle.sales.source import MAX_LABEL_CHARS, Source
from lifecycle.settings import PROJECT_DIR
from tests.conftest import AS_OF
from tests.db.test_sales_dp import guest_checkout  # noqa: F401 (a fixture)
from tests.db.test_sales_planning import buys, catalogue, k3_with_catalogue, rows


def k3_mapped(policy_file, raw: str):
    """k = 3 with the policy's `raw:` section as given (a YAML flow mapping)."""
    return load_policy(
        policy_file(f'version: "test"\nanalytics: {{min_customers_per_cell: 3}}\nraw: {raw}\n')
    )


# 200 characters of four bytes each, no two alike, so that no compression shortens the key.
WIDE = "".join(chr(0x1F300 + n) for n in range(MAX_LABEL_CHARS))


def test_a_revenue_past_a_trillion_is_published_in_every_table(engine, policy_file):
    """numeric(14,2) overflowed at 10^12 and the night's build rolled back."""
    policy = k3_with_catalogue(policy_file)
    with engine.begin() as conn:
        catalogue(conn, jewels=["BIG"])
        for n in range(3):
            buys(conn, 1 + n, 10 + n, 2, "BIG", "SH", units=1000)
        conn.execute(sa.text("UPDATE shop.order_items SET unit_price = 9999999999.99"))
    each = Decimal("9999999999990.00")  # 1,000 units at 9,999,999,999.99

    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    planning.build_planning_tables(engine, policy, AS_OF)

    assert rows(engine, "SELECT revenue FROM analytics.sales_volume_daily") == [(3 * each,)]
    assert rows(
        engine, "SELECT DISTINCT revenue FROM analytics.weekly_demand WHERE level = 'sku_region'"
    ) == [(3 * each,)]
    assert rows(
        engine, "SELECT DISTINCT revenue FROM analytics.product_line_summary WHERE level = 'sku'"
    ) == [(3 * each,)]


def test_returns_that_bring_a_week_to_zero_units_leave_its_shares_empty(engine, policy_file):
    """Three buyers of X, and three others returning as many units of X, booked as negative
    lines (as many shops book returns): the 7-day window's published units add up to zero, so
    it has no shares (the build divided by zero), and X has no relative error to measure (the
    build divided by zero there too). The 28-day window, with Y bought earlier, keeps its
    shares."""
    policy = k3_with_catalogue(policy_file)
    with engine.begin() as conn:
        catalogue(conn, tea=["X", "Y"])
        for n in range(3):
            buys(conn, 1 + n, 10 + n, 1, "X", "SH", units=2)
            buys(conn, 11 + n, 20 + n, 3, "X", "SH", units=-2)
            buys(conn, 21 + n, 30 + n, -14, "Y", "SH", units=1)

    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    summary, weekly = planning.build_planning_tables(engine, policy, AS_OF)

    week = rows(
        engine,
        "SELECT sku, units, units_share_pct FROM analytics.product_line_summary "
        "WHERE window_days = 7 ORDER BY sku",
    )
    assert week == [("X", 0, None)]
    month = rows(
        engine,
        "SELECT sku, units, units_share_pct FROM analytics.product_line_summary "
        "WHERE window_days = 28 ORDER BY sku",
    )
    assert month == [("X", 0, Decimal("0.00")), ("Y", 3, Decimal("100.00"))]
    # Y is the only sku with units to measure: its 28-day total is exact in both tables.
    for table in (summary, weekly):
        measured = table.utility.errors["sku_28d_top80"]
        assert (measured.count, measured.median_error_pct) == (1, 0.0)


def test_a_sku_or_region_too_long_to_key_a_row_is_left_out_and_named(engine, policy_file):
    """A sku of 3,000 characters (it failed the night on the size of the daily table's key
    entry) and a region of 201 are named and left out; labels of 200 four-byte characters (sku,
    region and product line together in one weekly key) publish."""
    policy = k3_with_catalogue(policy_file)
    long = "".join(hashlib.sha256(str(n).encode()).hexdigest() for n in range(94))[:3000]
    wide_region = "R" * (MAX_LABEL_CHARS + 1)
    with engine.begin() as conn:
        catalogue(conn, **{WIDE: [WIDE]})
        for n in range(3):
            buys(conn, 1 + n, 10 + n, 2, WIDE, WIDE)
            buys(conn, 11 + n, 20 + n, 2, long, "SH")
            buys(conn, 21 + n, 30 + n, 2, "X", wide_region)

    built = daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    summary, weekly = planning.build_planning_tables(engine, policy, AS_OF)

    assert rows(engine, "SELECT sku, region, units FROM analytics.sales_volume_daily") == [
        (WIDE, WIDE, 3)
    ]
    assert rows(
        engine,
        "SELECT product_line, sku, region, units FROM analytics.weekly_demand "
        "WHERE level = 'sku_region'",
    ) == [(WIDE, WIDE, WIDE, 3)]
    for found in (built.uncounted, summary.uncounted, weekly.uncounted):
        assert (found.lines, found.units) == (6, 6)
        assert found.orders == ("11", "12", "13", "21", "22")
        assert f"over {MAX_LABEL_CHARS} characters" in found.warning()
        assert long not in found.warning()
    guard = differencing_remainders(engine, policy)
    assert guard.error is None and not guard.findings


def test_lines_of_quantity_zero_count_no_customer_toward_k(engine, policy_file):
    """One buyer of X (5 units) and two customers whose orders keep an X line of quantity zero,
    as an order edit leaves a removed item: counted as three customers, every table published the
    one buyer's 5 units (k = 3). Y's three buyers publish as three customers, not five."""
    policy = k3_with_catalogue(policy_file)
    with engine.begin() as conn:
        catalogue(conn, tea=["X"], coffee=["Y"])
        buys(conn, 1, 10, 2, "X", "SH", units=5)
        for n in range(2):
            buys(conn, 2 + n, 11 + n, 2, "X", "SH", units=0)
        for n in range(5):
            buys(conn, 11 + n, 20 + n, 2, "Y", "SH", units=1 if n < 3 else 0)

    built = daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    planning.build_planning_tables(engine, policy, AS_OF)

    assert rows(
        engine, "SELECT sku, region, orders, units, customers FROM analytics.sales_volume_daily"
    ) == [("Y", "SH", 3, 3, 3)]
    for table in ("weekly_demand", "product_line_summary"):
        assert rows(
            engine, f"SELECT count(*) FROM analytics.{table} WHERE product_line = 'tea'"
        ) == [(0,)]
        assert rows(engine, f"SELECT DISTINCT units FROM analytics.{table} WHERE sku = 'Y'") == [
            (3,)
        ]
    assert built.uncounted.lines == 0  # no sale is missing: nothing to name
    guard = differencing_remainders(engine, policy)
    assert guard.error is None and not guard.findings


@pytest.mark.parametrize(
    ("bought_on", "returned_on"), [(2, 2), (3, 4)], ids=["same_day", "later_that_week"]
)
def test_a_customer_whose_lines_net_to_nothing_counts_toward_no_k(
    engine, policy_file, bought_on, returned_on
):
    """k = 3. One buyer of X (5 units) and two customers who each bought one X on day 2 and
    booked it back as a negative line, the same day or two days after the buyer's day: counted
    as three customers, the daily table (same day) or both planning tables (the week, where no
    day of X is published to subtract) published the one buyer's 5 units as a row of three.
    Z's four buyers publish as before."""
    policy = k3_with_catalogue(policy_file)
    with engine.begin() as conn:
        catalogue(conn, tea=["X"], cake=["Z"])
        buys(conn, 1, 10, bought_on, "X", "SH", units=5)
        for n in range(2):
            buys(conn, 2 + n, 11 + n, 2, "X", "SH", units=1)
            buys(conn, 4 + n, 11 + n, returned_on, "X", "SH", units=-1)
        for n in range(4):
            buys(conn, 20 + n, 20 + n, 1, "Z", "SH", units=2)

    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    planning.build_planning_tables(engine, policy, AS_OF)

    assert rows(engine, "SELECT count(*) FROM analytics.sales_volume_daily WHERE sku = 'X'") == [
        (0,)
    ]
    for table in ("weekly_demand", "product_line_summary"):
        assert rows(
            engine, f"SELECT count(*) FROM analytics.{table} WHERE product_line = 'tea'"
        ) == [(0,)], table
        assert rows(
            engine, f"SELECT DISTINCT units, customers FROM analytics.{table} WHERE sku = 'Z'"
        ) == [(8, 4)], table
    assert small_cells(engine, policy).passed
    guard = differencing_remainders(engine, policy)
    assert guard.error is None and not guard.findings


@pytest.fixture
def weighed_items(engine):
    """A shop's own order-line table whose quantity is a weight (numeric), mapped in the policy.
    Capture goes back to the reference tables afterwards: the session's database is shared."""
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE public.weighed_items (LIKE shop.order_items)"))
        conn.execute(sa.text("ALTER TABLE public.weighed_items ALTER quantity TYPE numeric(12,3)"))
    yield
    reference = load_policy(PROJECT_DIR / "policy.yaml")
    with engine.begin() as conn:
        ensure_capture(conn, Source(reference), capture_signature(reference))
        conn.execute(sa.text("DROP TABLE public.weighed_items"))


def test_a_quantity_that_is_not_whole_is_left_out_and_named(engine, policy_file, weighed_items):
    """0.4 kg is no number of units: the daily table summed such lines into `units bigint` per
    cell and the planning tables rounded them per row, so the two disagreed. Lines of whole
    quantities (2.000) count; the weighed ones are named with their orders."""
    policy = k3_mapped(
        policy_file,
        "{catalogue: {table: shop.products}, order_items: {table: public.weighed_items}}",
    )
    with engine.begin() as conn:
        catalogue(conn, tea=["X"])
        for n in range(6):
            buys(conn, 1 + n, 10 + n, 2, "X", "SH")
        conn.execute(
            sa.text("""INSERT INTO public.weighed_items (order_id, line_no, sku, quantity,
                                                         unit_price)
                       SELECT order_id, line_no, sku, CASE WHEN order_id <= 3 THEN 2 ELSE 0.4 END,
                              unit_price
                       FROM shop.order_items""")
        )

    built = daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    summary, weekly = planning.build_planning_tables(engine, policy, AS_OF)

    assert rows(engine, "SELECT units, customers FROM analytics.sales_volume_daily") == [(6, 3)]
    assert rows(
        engine, "SELECT DISTINCT units FROM analytics.weekly_demand WHERE level <> 'all'"
    ) == [(6,)]
    assert rows(engine, "SELECT DISTINCT units FROM analytics.product_line_summary") == [(6,)]
    for found in (built.uncounted, summary.uncounted, weekly.uncounted):
        assert (found.lines, found.units, found.orders) == (3, 1, ("4", "5", "6"))
        warning = found.warning()
        assert "not a whole number" in warning and "public.weighed_items" in warning
        assert "\n" not in warning


@pytest.fixture
def failing_catalogue(engine):
    """A mapped catalogue view that fails when read, as a shop's own view can."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("""CREATE VIEW public.failing_catalogue AS
                       SELECT sku, (1 / (length(sku) - length(sku)))::text AS product_line
                       FROM shop.products""")
        )
    yield
    with engine.begin() as conn:
        conn.execute(sa.text("DROP VIEW public.failing_catalogue"))


def test_a_database_error_in_a_planning_build_names_its_class_not_the_statement(
    engine, policy_file, failing_catalogue
):
    """The planning builds let the driver's error out as it was: the statement, its parameters
    and the server's detail, which can quote a row."""
    policy = k3_mapped(policy_file, "{catalogue: {table: public.failing_catalogue}}")
    with engine.begin() as conn:
        catalogue(conn, tea=["X"])
        for n in range(3):
            buys(conn, 1 + n, 10 + n, 2, "X", "SH")
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)

    with pytest.raises(SalesError) as raised:
        planning.build_planning_tables(engine, policy, AS_OF)

    message = str(raised.value)
    assert "published figures unchanged" in message and "DivisionByZero" in message
    assert "SELECT" not in message and "\n" not in message
    assert rows(engine, "SELECT count(*) FROM analytics.weekly_demand") == [(0,)]


@pytest.mark.usefixtures("guest_checkout")
def test_guest_orders_count_units_but_no_customer_toward_k(engine, policy_file):
    """Orders that name no customer (a mapped shop's guest checkout) are unknown people: the k
    rule counts their units and no customer, in every table. Two known buyers and three guests
    are withheld; three known buyers and two guests publish all five orders' units, as three
    customers."""
    policy = k3_with_catalogue(policy_file)
    with engine.begin() as conn:
        catalogue(conn, tea=["X", "Y"])
        for n in range(5):
            buys(conn, 1 + n, 10 + n, 2, "X", "SH", units=2)
            buys(conn, 11 + n, 20 + n, 2, "Y", "SH", units=1)
        conn.execute(
            sa.text("UPDATE shop.orders SET customer_id = NULL WHERE order_id IN (1, 2, 3, 11, 12)")
        )

    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    planning.build_planning_tables(engine, policy, AS_OF)

    assert rows(engine, "SELECT sku, units, customers FROM analytics.sales_volume_daily") == [
        ("Y", 5, 3)
    ]
    # The planning tables counted a guest's NULL as one more customer: X's two buyers and its
    # guests published as a sku row of 2 customers, and the guard failed the night.
    for table in ("weekly_demand", "product_line_summary"):
        assert rows(engine, f"SELECT DISTINCT sku, units, customers FROM analytics.{table}") == [
            ("Y", 5, 3)
        ]
    assert small_cells(engine, policy).passed
    guard = differencing_remainders(engine, policy)
    assert guard.error is None and not guard.findings


@pytest.mark.usefixtures("guest_checkout")
def test_a_guest_does_not_make_a_planning_row_of_fewer_buyers_publish(engine, policy_file):
    """k = 3. X: buyer 1 in the last week, buyer 2 and a guest two weeks before; Z (another
    line): buyers 6 and 7 in the last week. The 28-day X row was counted as three (NULL one of
    them) and published with 2 customers. No single atom of it can be derived (the 7-day all row
    holds buyer 1's X with Z), so only the k count keeps it back; now X's 28 days are in the
    window's all row, with Z's. (The 7-day all row is merged away by the differencing rule: the
    28-day row minus it would leave buyer 2 and the guest.)"""
    policy = k3_with_catalogue(policy_file)
    with engine.begin() as conn:
        catalogue(conn, tea=["X"], coffee=["Z"])
        buys(conn, 1, 1, 2, "X", "SH")
        buys(conn, 2, 2, -12, "X", "SH")
        buys(conn, 3, 3, -12, "X", "SH")
        buys(conn, 6, 6, 3, "Z", "SH")
        buys(conn, 7, 7, 3, "Z", "SH")
        conn.execute(sa.text("UPDATE shop.orders SET customer_id = NULL WHERE order_id = 3"))

    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    planning.build_planning_tables(engine, policy, AS_OF)

    summary = "SELECT window_days, level, units, customers FROM analytics.product_line_summary"
    assert rows(engine, f"{summary} WHERE level = 'sku'") == []  # it was (28, 'sku', 3, 2)
    assert (28, "all", 5, 4) in rows(engine, summary)
    assert small_cells(engine, policy).passed
    guard = differencing_remainders(engine, policy)
    assert guard.error is None and not guard.findings


def test_a_mapping_the_capture_cannot_take_fails_as_one_line_without_the_statement(
    engine, policy_file
):
    """The policy check refuses orders mapped to a view (tests/db/test_policy_database.py); a
    build handed one anyway failed with the driver's error and the CREATE TRIGGER statement."""
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE VIEW public.orders_seen AS SELECT * FROM shop.orders"))
    policy = load_policy(
        policy_file('version: "test"\nraw: {orders: {table: public.orders_seen}}\n')
    )
    try:
        with pytest.raises(SalesError) as raised:
            daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP VIEW public.orders_seen"))
    message = str(raised.value)
    assert "WrongObjectType" in message and "TRIGGER" not in message and "\n" not in message
