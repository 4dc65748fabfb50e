"""Differential privacy as the policy's mechanism: OpenDP's privacy map equals the policy's ε,
a release is stored and not redrawn, late data spends budget, and an exhausted budget fails."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from lifecycle.policy import load_policy
from lifecycle.sales import dp, rollup
from lifecycle.sales.daily import SalesError
from lifecycle.sales.source import Source
from tests.conftest import AS_OF, truncate_all
from tests.db.test_sales import add_sale, noon

PERIOD = date(2026, 4, 20)  # the last complete 28-day period before AS_OF (to 2026-05-17)


def dp_policy(policy_file, budget: float = 2.0, catalogue: bool = True, epsilon: float = 1.0):
    raw = "raw: {catalogue: {table: shop.products}}\n" if catalogue else ""
    return load_policy(
        policy_file(
            'version: "test"\n'
            "analytics:\n  mechanism: differential_privacy\n"
            f"  differential_privacy: {{epsilon_per_release: {epsilon}, "
            f"epsilon_budget_per_period: {budget},"
            " max_units_per_customer_per_cell: 2, max_units_per_customer_per_period: 3}\n" + raw
        )
    )


def shop(engine) -> None:
    with engine.begin() as conn:
        for sku, line in [("A", "tea"), ("B", "tea"), ("C", "pet")]:
            conn.execute(
                sa.text("INSERT INTO shop.products VALUES (:s, :l)"), {"s": sku, "l": line}
            )
        for n in range(40):
            add_sale(conn, 1 + n, 1 + n, noon(date(2026, 5, 12)), sku="A", quantity=1)
        add_sale(conn, 100, 7, noon(date(2026, 5, 13)), sku="B", quantity=50)  # clipped to 2


def clipped(engine, policy) -> dict[str, int]:
    """The clipped counts per catalogue sku of PERIOD, as the release would noise them."""
    with engine.begin() as conn:
        dp.load_catalogue(conn, policy)
        after = PERIOD + timedelta(weeks=dp.PERIOD_WEEKS)
        rollup.load_lines(conn, Source(policy), policy.raw.catalogue, PERIOD, after)
        bounds = policy.analytics.differential_privacy
        counts = {sku: units for sku, _, units in dp.clipped_counts(conn, PERIOD, bounds)}
        conn.rollback()
    return counts


def released_lines(engine) -> dict[tuple[date, str], int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT period_start, product_line, units FROM analytics.sales_units_dp_lines")
        )
        return {(w, line): u for w, line, u in rows}


def released(engine) -> dict[tuple[date, str], int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT period_start, sku, units FROM analytics.sales_units_dp")
        )
        return {(w, s): u for w, s, u in rows}


def test_the_privacy_map_of_a_release_equals_the_policys_epsilon(policy_file):
    bounds = dp_policy(policy_file).analytics.differential_privacy
    assert dp.privacy_loss(bounds) == pytest.approx(bounds.epsilon_per_release)


def test_every_catalogue_sku_is_released_every_period_as_a_non_negative_count(engine, policy_file):
    shop(engine)
    report = dp.release(engine, dp_policy(policy_file), AS_OF, run_id="night-1")
    rows = released(engine)
    assert len(report.released) == dp.PERIODS and report.refused == []
    assert {sku for _, sku in rows} == {"A", "B", "C"} and len(rows) == dp.PERIODS * 3
    assert all(units >= 0 for units in rows.values())
    assert abs(rows[(PERIOD, "A")] - 40) < 40  # noise of scale 3 around 40, not a withheld cell
    assert report.metadata()["epsilon_left_per_period"][PERIOD.isoformat()] == 1.0


def test_the_release_shows_a_planner_its_28_day_errors_against_the_true_units(engine, policy_file):
    """At an ε so large the noise rounds away, what is left is the clipping: B's 50 units by one
    customer are released as 2, A's 40 units by 40 customers as 40."""
    shop(engine)
    policy = dp_policy(policy_file, budget=1000.0, epsilon=1000.0)
    report = dp.release(engine, policy, AS_OF, run_id="night-1")
    shown = report.metadata()
    assert shown["utility_period"] == f"{PERIOD}..{PERIOD + timedelta(days=27)}"
    assert shown["sku_28d_top80_count"] == 2  # B (50) and A (40) make up 80% of 90 units
    assert shown["sku_28d_top80_median_rel_error_pct"] == 48.0  # A exact, B 48/50 short
    assert shown["product_line_28d_median_rel_error_pct"] == 53.33  # tea: 42 of 90
    assert shown["units_released_pct"] == 46.67
    assert shown["expected_median_noise_units"] == 0.0
    at_one = dp.release(engine, dp_policy(policy_file, epsilon=1.0), AS_OF, run_id="night-2")
    # under the policy's ε (3 / 1 × ln 2), though the kept release was drawn at ε = 1000
    assert at_one.metadata()["expected_median_noise_units"] == 2.08


def test_skus_sold_but_not_in_the_catalogue_are_counted_and_named(engine, policy_file):
    """They are not in the key set, so never released: the release says so, never silently."""
    shop(engine)
    with engine.begin() as conn:
        add_sale(conn, 300, 300, noon(date(2026, 5, 12)), sku="NEW-1", quantity=4)
        add_sale(conn, 301, 301, noon(date(2026, 5, 13)), sku="NEW-2", quantity=1)
    report = dp.release(engine, dp_policy(policy_file), AS_OF, run_id="night-1")
    assert {sku for _, sku in released(engine)} == {"A", "B", "C"}
    assert report.metadata()["skus_sold_not_in_catalogue"] == 2
    assert report.metadata()["units_of_skus_not_in_catalogue"] == 5
    warning = report.not_in_catalogue.warning()
    assert "\n" not in warning and "('NEW-1', 'NEW-2')" in warning
    assert "5 unit(s) are in no release" in warning


def test_a_rerun_does_not_redraw_and_late_data_spends_budget(engine, policy_file):
    policy = dp_policy(policy_file)
    shop(engine)
    dp.release(engine, policy, AS_OF, run_id="night-1")
    first, first_lines = released(engine), released_lines(engine)
    again = dp.release(engine, policy, AS_OF, run_id="night-2")
    assert released(engine) == first and again.released == [] and len(again.kept) == dp.PERIODS
    assert released_lines(engine) == first_lines and len(first_lines) == dp.PERIODS * 2
    assert again.epsilon_spent_now == 0
    with engine.begin() as conn:  # a late order in the last released period
        add_sale(conn, 200, 500, noon(date(2026, 5, 14)), sku="C", quantity=1)
    late = dp.release(engine, policy, AS_OF, run_id="night-3")
    assert late.released == [PERIOD] and late.spent_per_period[PERIOD.isoformat()] == 2.0
    with engine.connect() as conn:
        ledger = conn.execute(
            sa.text(
                "SELECT reason, epsilon FROM lifecycle.dp_ledger WHERE period_start = :w "
                "ORDER BY entry_id"
            ),
            {"w": PERIOD},
        ).all()
    assert ledger == [("first release", 1.0), ("re-release: the source changed", 1.0)]
    assert dp.budget_check(engine, policy).passed


def test_a_product_line_is_released_as_its_skus_noisy_sum_before_the_floor(
    engine, policy_file, monkeypatch
):
    """The noise is fixed here to see the post-processing: A's clipped 40 draws -1, B's 2 draws
    -5, C's 0 draws +2. The sku rows are floored one by one (39, 0, 2); the tea line is 39 - 3 =
    36, not the 39 its floored skus add up to, so an unsold sku's positive noise is not counted
    without its negative twin. Spends the same ε as the sku rows alone (one draw)."""
    offsets = {40: -1, 2: -5, 0: 2}
    monkeypatch.setattr(
        dp, "laplace", lambda bounds: lambda counts: [c + offsets[c] for c in counts]
    )
    shop(engine)
    report = dp.release(engine, dp_policy(policy_file), AS_OF, run_id="night-1")
    assert {sku: u for (w, sku), u in released(engine).items() if w == PERIOD} == {
        "A": 39,
        "B": 0,
        "C": 2,
    }
    assert {line: u for (w, line), u in released_lines(engine).items() if w == PERIOD} == {
        "tea": 36,
        "pet": 2,
    }
    assert report.spent_per_period[PERIOD.isoformat()] == 1.0


def test_an_exhausted_budget_refuses_the_release_and_fails_the_check(engine, policy_file):
    policy = dp_policy(policy_file, budget=1.0)
    shop(engine)
    dp.release(engine, policy, AS_OF, run_id="night-1")
    before = released(engine)
    with engine.begin() as conn:
        add_sale(conn, 200, 500, noon(date(2026, 5, 14)), sku="C", quantity=1)
    late = dp.release(engine, policy, AS_OF, run_id="night-2")
    assert late.refused == [PERIOD] and released(engine) == before  # the old release stays
    check = dp.budget_check(engine, policy)
    assert not check.passed
    assert [(f.kind, f.count) for f in check.findings] == [("release_refused_over_budget", 1)]


def test_without_a_catalogue_there_is_no_public_key_set_and_nothing_is_released(
    engine, policy_file
):
    with pytest.raises(SalesError, match="needs the public list of skus: map raw.catalogue"):
        dp.release(engine, dp_policy(policy_file, catalogue=False), AS_OF, run_id="night-1")


def test_an_empty_catalogue_is_refused_and_spends_no_epsilon(engine, policy_file):
    """Sales and no catalogue row: the release published nothing and recorded ε as spent."""
    with engine.begin() as conn:
        add_sale(conn, 1, 1, noon(date(2026, 5, 12)), sku="A", quantity=1)
    with pytest.raises(SalesError, match="shop.products lists no sku") as raised:
        dp.release(engine, dp_policy(policy_file), AS_OF, run_id="night-1")
    assert "\n" not in str(raised.value)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM lifecycle.dp_ledger")).scalar() == 0


def test_under_the_k_mechanism_nothing_is_released(engine, policy):
    shop(engine)
    report = dp.release(engine, policy, AS_OF, run_id="night-1")
    assert report.mechanism == "k_threshold" and report.released == [] and released(engine) == {}


def test_periods_are_fixed_28_day_blocks_and_only_complete_ones_are_released():
    last_day_of_a_period = PERIOD + timedelta(days=27)
    assert dp.periods(last_day_of_a_period)[-1] == PERIOD
    assert dp.periods(last_day_of_a_period + timedelta(days=1))[-1] == PERIOD
    assert dp.periods(last_day_of_a_period - timedelta(days=1))[-1] == PERIOD - timedelta(days=28)
    starts = dp.periods(date(2026, 5, 31))
    assert starts[-1] == PERIOD and len(starts) == dp.PERIODS
    assert all(
        later - earlier == timedelta(days=28)
        for earlier, later in zip(starts, starts[1:], strict=False)
    )


def test_a_return_booked_as_a_negative_line_lets_no_customer_count_past_the_period_cap(
    engine, policy_file
):
    """Each of 20 customers returns 100 units of A and buys 2 of each of B..F in the period: A
    counts as none, and B..F together count at most the period's cap of 3, whatever order the
    customer's skus take. A negative A before them let them count all 10."""
    policy = dp_policy(policy_file)
    bounds = policy.analytics.differential_privacy
    with engine.begin() as conn:
        for sku in "ABCDEF":
            conn.execute(sa.text("INSERT INTO shop.products VALUES (:s, 'tea')"), {"s": sku})
        order = 0
        for customer in range(1, 21):
            for sku, units in [("A", -100), *((s, 2) for s in "BCDEF")]:
                order += 1
                add_sale(
                    conn, order, customer, noon(PERIOD + timedelta(days=3)), sku=sku, quantity=units
                )
    counts = clipped(engine, policy)
    assert counts["A"] == 0
    assert sum(counts.values()) == 20 * bounds.max_units_per_customer_per_period


@pytest.fixture
def guest_checkout(engine):
    """shop.orders as a shop with guest checkout may map it: an order may name no customer. The
    session's database is shared, so the constraint comes back afterwards."""
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE shop.orders ALTER customer_id DROP NOT NULL"))
    yield
    truncate_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE shop.orders ALTER customer_id SET NOT NULL"))


def test_lines_of_orders_without_a_customer_count_for_nobody_and_are_named(
    engine, policy_file, guest_checkout
):
    """Six guest orders of 2 units of B..F each, and one customer's. Grouped as SQL groups NULLs,
    the guests were one customer sharing one period cap of 3, so one guest's lines could move the
    release by twice the bound; now they count for nobody, and the release says so."""
    policy = dp_policy(policy_file)
    with engine.begin() as conn:
        for sku in "BCDEF":
            conn.execute(sa.text("INSERT INTO shop.products VALUES (:s, 'tea')"), {"s": sku})
        for order, sku in enumerate("BCDEFB", start=1):
            add_sale(conn, order, 1, noon(PERIOD + timedelta(days=3)), sku=sku, quantity=2)
        conn.execute(sa.text("UPDATE shop.orders SET customer_id = NULL"))
        add_sale(conn, 7, 7, noon(PERIOD + timedelta(days=3)), sku="C", quantity=1)

    report = dp.release(engine, policy, AS_OF, run_id="night-1")

    counts = clipped(engine, policy)
    assert counts == {"B": 0, "C": 1, "D": 0, "E": 0, "F": 0}
    found = report.without_customer
    assert (found.lines, found.units) == (6, 12)
    assert found.orders == ("1", "2", "3", "4", "5") and "and more" in found.warning()
    assert report.metadata()["order_lines_without_customer"] == 6
