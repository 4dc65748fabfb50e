"""A shop's own catalogue, mapped as it is: a sku listed twice, or under two product lines, or
under none, still puts each sale in the sales tables once, and the builds say which skus and
what to fix."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from lifecycle.policy import load_policy
from lifecycle.sales import daily, dp, planning, rollup
from lifecycle.sales.catalogue import UNLISTED, ambiguous_skus
from lifecycle.sales.differencing import differencing_remainders
from lifecycle.sales.source import Source
from tests.conftest import AS_OF
from tests.db.test_sales import add_sale, noon
from tests.db.test_sales_dp import PERIOD, released
from tests.db.test_sales_planning import WEEK, rows

MAPPED = (
    "raw: {catalogue: {table: public.shop_catalogue, columns: {sku: code, product_line: family}}}\n"
)


def mapped_policy(policy_file, analytics: str = "{min_customers_per_cell: 3}"):
    return load_policy(policy_file(f'version: "test"\nanalytics: {analytics}\n{MAPPED}'))


@pytest.fixture
def untidy_catalogue(engine):
    """X twice under tea, Y under tea and pet, Z under no line (NULL and blank), a row without a
    sku. A view over a shop's product tables can list skus like this; nothing forbids it."""
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS public.shop_catalogue"))
        conn.execute(sa.text("CREATE TABLE public.shop_catalogue (code text, family text)"))
        conn.execute(
            sa.text("INSERT INTO public.shop_catalogue VALUES (:c, :f)"),
            [
                {"c": "X", "f": "tea"},
                {"c": "X", "f": "tea"},
                {"c": "Y", "f": "tea"},
                {"c": "Y", "f": "pet"},
                {"c": "Z", "f": None},
                {"c": "Z", "f": "  "},
                {"c": None, "f": "tea"},
            ],
        )
    yield
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE public.shop_catalogue"))


def sales(engine) -> int:
    """Four buyers of each of X, Y and Z in WEEK, 2 units each: 24 units."""
    with engine.begin() as conn:
        for n, sku in enumerate(["X", "Y", "Z"] * 4):
            day = noon(WEEK + timedelta(days=n % 7))
            add_sale(conn, 1 + n, 100 + n, day, region="SH", sku=sku, quantity=2)
    return 24


def test_each_sale_counts_once_whatever_the_catalogue_lists_and_the_build_names_the_skus(
    engine, policy_file, untidy_catalogue
):
    policy = mapped_policy(policy_file)
    units = sales(engine)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    summary = planning.build_product_line_summary(engine, policy, AS_OF)
    weekly = planning.build_weekly_demand(engine, policy, AS_OF)

    assert weekly.units_total == units and summary.units_total == units
    assert weekly.units_published == units
    assert rows(
        engine,
        "SELECT product_line, sku, sum(units) FROM analytics.weekly_demand "
        "GROUP BY product_line, sku ORDER BY sku",
    ) == [("tea", "X", 8), (UNLISTED, "Y", 8), (UNLISTED, "Z", 8)]
    assert rows(
        engine,
        "SELECT sum(units) FROM analytics.product_line_summary WHERE window_days = 84",
    ) == [(units,)]
    assert differencing_remainders(engine, policy).passed

    for build in (summary, weekly):
        assert build.metadata()["catalogue_skus_under_several_lines"] == 1
        warning = build.catalogue.warning()
        assert warning == (
            "raw.catalogue public.shop_catalogue: 1 sku(s) listed under more than one product "
            f"line ('Y'); their sales count once, under {UNLISTED}, until the catalogue lists "
            "each sku under one product line"
        )


def test_skus_sold_but_not_listed_count_under_unlisted_and_are_named(
    engine, policy_file, untidy_catalogue
):
    """W is not in the catalogue, nor is 'x ' (X with a trailing space and another case): both
    count under UNLISTED in the planning tables, and the build names them with the fix."""
    policy = mapped_policy(policy_file)
    with engine.begin() as conn:
        for n, sku in enumerate(["W", "x ", "X"] * 3):
            add_sale(conn, 300 + n, 400 + n, noon(WEEK + timedelta(days=n % 7)), sku=sku)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    summary, weekly = planning.build_planning_tables(engine, policy, AS_OF)
    for build in (summary, weekly):
        found = build.not_in_catalogue
        assert (found.count, found.units, found.examples) == (2, 6, ("W", "x "))
        assert build.metadata()["skus_sold_not_in_catalogue"] == 2
    assert weekly.not_in_catalogue.warning() == (
        "raw.catalogue: 2 sku(s) sold are not in the catalogue ('W', 'x '): their 6 unit(s) "
        f"count under {UNLISTED} until the catalogue lists them (a code that differs in case or "
        "spaces from the order lines' is another sku)"
    )
    assert rows(
        engine,
        "SELECT product_line, sum(units) FROM analytics.product_line_summary "
        "WHERE window_days = 84 GROUP BY 1 ORDER BY 1",
    ) == [(UNLISTED, 6), ("tea", 3)]
    without = load_policy(policy_file('version: "test"\n', name="none.yaml"))
    assert (
        planning.build_planning_tables(engine, without, AS_OF)[1].not_in_catalogue.metadata() == {}
    )


def test_a_clean_catalogue_gives_no_warning_and_a_shop_without_one_reports_nothing(
    engine, policy_file, untidy_catalogue
):
    policy_with = mapped_policy(policy_file)
    with engine.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM public.shop_catalogue WHERE code = 'Y' AND family = 'pet'")
        )
        assert ambiguous_skus(conn, policy_with.raw.catalogue).warning() is None
        without = load_policy(policy_file('version: "test"\n', name="none.yaml"))
        assert ambiguous_skus(conn, without.raw.catalogue).metadata() == {}
        # Past five, the warning names five and counts the rest.
        conn.execute(
            sa.text("INSERT INTO public.shop_catalogue VALUES (:c, 'a'), (:c, 'b')"),
            [{"c": f"S{n}"} for n in range(7)],
        )
        found = ambiguous_skus(conn, policy_with.raw.catalogue)
    assert (found.count, found.examples) == (7, ("S0", "S1", "S2", "S3", "S4"))
    assert "('S0', 'S1', 'S2', 'S3', 'S4' and 2 more)" in found.warning()


def test_the_dp_release_publishes_a_sku_listed_twice_once(engine, policy_file, untidy_catalogue):
    """Released twice, a sku's units would move the release by twice the bound its ε was
    computed for; released once, under UNLISTED where its line is not clear."""
    policy = mapped_policy(
        policy_file,
        "\n  mechanism: differential_privacy\n"
        "  differential_privacy: {epsilon_per_release: 1.0, epsilon_budget_per_period: 2.0,"
        " max_units_per_customer_per_cell: 2, max_units_per_customer_per_period: 3}",
    )
    with engine.begin() as conn:
        for n in range(10):
            add_sale(conn, 1 + n, 1 + n, noon(PERIOD + timedelta(days=3)), sku="Y", quantity=1)
    report = dp.release(engine, policy, AS_OF, run_id="night-1")
    with engine.connect() as conn:
        lines = conn.execute(
            sa.text(
                "SELECT sku, product_line, count(*) FROM analytics.sales_units_dp "
                "WHERE period_start = :p GROUP BY sku, product_line ORDER BY sku"
            ),
            {"p": PERIOD},
        ).all()
    assert [tuple(r) for r in lines] == [("X", "tea", 1), ("Y", UNLISTED, 1), ("Z", UNLISTED, 1)]
    assert len(released(engine)) == dp.PERIODS * 3
    assert report.metadata()["catalogue_skus_under_several_lines"] == 1


def test_a_product_line_or_sku_named_like_a_rolled_up_row_is_a_row_of_its_own(engine, policy_file):
    """k = 3. A catalogue may name a product line OTHER, a sku OTHER, or put a '|' or a backslash
    in a name. Line OTHER: A (3 buyers, its own row), B and C (3 together: the line's row, which
    reads OTHER/OTHER like the week's all row). The all row: pet's sku OTHER (2 buyers), X|1 and
    \\y (1 each). Taken for one row, the line's row and the all row made the guard fail the night
    (and the published tables could not hold both)."""
    policy = mapped_policy(policy_file)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE public.shop_catalogue (code text, family text)"))
        listed = [("A", "OTHER"), ("B", "OTHER"), ("C", "OTHER"), ("OTHER", "pet")]
        listed += [("X|1", "tea|green"), ("\\y", "\\x")]
        conn.execute(
            sa.text("INSERT INTO public.shop_catalogue VALUES (:c, :f)"),
            [{"c": code, "f": family} for code, family in listed],
        )
        n = 0
        for sku, buyers in [("A", 3), ("B", 2), ("C", 1), ("OTHER", 2), ("X|1", 1), ("\\y", 1)]:
            for _ in range(buyers):
                n += 1
                add_sale(conn, n, 100 + n, noon(WEEK + timedelta(days=n % 7)), "SH", sku)
    try:
        daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
        summary = planning.build_product_line_summary(engine, policy, AS_OF)
        weekly = planning.build_weekly_demand(engine, policy, AS_OF)
        guard = differencing_remainders(engine, policy)
        with engine.begin() as conn:  # the rows as the guard places the lines: as a reader does
            day = planning.window_end(daily.last_complete_day(engine, policy, AS_OF))
            first, after = planning.lines_span(day)
            rollup.load_lines(conn, Source(policy), policy.raw.catalogue, first, after)
            planning.assign_published_weekly(conn, day)
            placed = conn.execute(
                sa.text("""SELECT level, count(*), count(DISTINCT row_key),
                                  (SELECT count(DISTINCT row_key) FROM pg_temp.sales_assign)
                           FROM pg_temp.sales_assign GROUP BY level ORDER BY level""")
            ).all()
            conn.rollback()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE public.shop_catalogue"))

    assert rows(
        engine,
        "SELECT level, product_line, sku, region, units, customers FROM analytics.weekly_demand "
        "ORDER BY level, sku",
    ) == [
        ("all", "OTHER", "OTHER", "OTHER", 4, 4),
        ("product_line", "OTHER", "OTHER", "OTHER", 3, 3),
        ("sku_region", "OTHER", "A", "SH", 3, 3),
    ]
    assert rows(
        engine,
        "SELECT level, product_line, sku, units FROM analytics.product_line_summary "
        "WHERE window_days = 28 ORDER BY level, sku",
    ) == [
        ("all", "OTHER", "OTHER", 4),
        ("product_line", "OTHER", "OTHER", 3),
        ("sku", "OTHER", "A", 3),
    ]
    assert (weekly.units_total, weekly.units_published) == (10, 10)
    assert (summary.units_total, summary.units_published) == (10, 10)
    assert guard.passed, guard.findings
    assert [tuple(r) for r in placed] == [(0, 3, 1, 3), (2, 3, 1, 3), (3, 4, 1, 3)]
