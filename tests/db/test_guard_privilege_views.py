"""A view hands its reader what its owner may read: the least-privilege check fails on any view the
analyst can read that reads a raw table with someone else's rights, on real PostgreSQL, and a
legitimate analytics zone (aggregate tables, a materialized aggregate, security_invoker views)
still passes."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from assets.guard import GUARD_CHECKS
from lifecycle.checks import CheckResult
from lifecycle.guard import privilege
from lifecycle.guard.key import GuardKey
from lifecycle.sales import daily, planning
from tests.conftest import AS_OF
from tests.shop import PERSONAL, add_delivered

ANALYST = privilege.ANALYST_ROLE
KEY = GuardKey(b"test-guard-key-not-for-production")
READS = "view_reads_raw_zone"
DEFINER = "view_calls_definer_function"


@pytest.fixture
def planted(engine):
    """Runs DDL as the migrating user (whose tables the analyst may read by default privileges);
    drops what it made after the test."""
    made: list[str] = []

    def run(sql: str, *drops: str) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(sql))
        made.extend(drops)

    with engine.begin() as conn:
        for order_id in (1, 2):
            add_delivered(conn, order_id, AS_OF - timedelta(days=2), customer_id=40 + order_id)
    yield run
    with engine.begin() as conn:
        for drop in reversed(made):
            conn.execute(sa.text(f"DROP {drop} CASCADE"))


def found(report: CheckResult) -> set[tuple[str, str, str]]:
    return {(f.table, f.column, f.kind) for f in report.findings}


def detail(report: CheckResult, table: str) -> str:
    [finding] = [f for f in report.findings if f.table == table]
    return finding.detail


def shown(report: CheckResult) -> str:
    return "\n".join([report.description(), repr(report.metadata()), *map(repr, report.findings)])


def as_analyst(engine, sql: str) -> list:
    with engine.connect() as conn, conn.begin():
        conn.execute(sa.text(f"SET LOCAL ROLE {ANALYST}"))
        rows = conn.execute(sa.text(sql)).all()
        conn.rollback()
    return rows


def test_a_view_over_the_raw_tables_hands_the_analyst_order_lines_and_fails_naming_it(
    engine, policy, planted
):
    planted(
        "CREATE VIEW analytics.v_lines AS SELECT o.placed_at, o.ship_region, o.customer_id AS cid,"
        " i.sku, i.quantity FROM shop.orders o JOIN shop.order_items i USING (order_id);"
        f" GRANT SELECT ON analytics.v_lines TO {ANALYST};"
        " CREATE VIEW analytics.v_hashed AS SELECT md5(receiver_email) AS h FROM shop.orders;"
        " CREATE VIEW analytics.v_count AS SELECT count(*) AS n FROM shop.after_sales_cases",
        "VIEW analytics.v_lines",
        "VIEW analytics.v_hashed",
        "VIEW analytics.v_count",
    )
    # The hole: the view reads with its owner's rights, so the analyst gets every line and its
    # customer id, while reading shop.orders itself is refused.
    assert sorted(r.cid for r in as_analyst(engine, "SELECT cid FROM analytics.v_lines")) == [
        41,
        42,
    ]

    report = privilege.analyst_access(engine, policy)

    assert found(report) == {
        ("analytics.v_lines", "", READS),
        ("analytics.v_hashed", "", READS),
        ("analytics.v_count", "", READS),
    }
    lines = detail(report, "analytics.v_lines")
    assert "shop.orders (customer_id, order_id, placed_at, ship_region)" in lines
    assert "shop.order_items (order_id, quantity, sku)" in lines
    assert "security_invoker" in lines and "aggregate" in lines
    assert "shop.orders (receiver_email)" in detail(report, "analytics.v_hashed")
    assert "shop.after_sales_cases (no column" in detail(report, "analytics.v_count")
    text = shown(report)
    assert all(value not in text for value in PERSONAL.values())


def test_a_view_over_such_a_view_fails_even_when_it_runs_with_the_readers_rights(
    engine, policy, planted
):
    planted(
        "CREATE VIEW public.orders_behind AS SELECT order_id, customer_id FROM shop.orders;"
        f" GRANT SELECT ON public.orders_behind TO {ANALYST};"
        " CREATE VIEW analytics.v_inner AS SELECT order_id, receiver_postcode FROM shop.orders;"
        " CREATE VIEW analytics.v_outer WITH (security_invoker = true) AS"
        "   SELECT i.order_id, i.receiver_postcode, b.customer_id"
        "   FROM analytics.v_inner i JOIN public.orders_behind b USING (order_id)",
        "VIEW public.orders_behind",
        "VIEW analytics.v_inner",
        "VIEW analytics.v_outer",
    )
    assert len(as_analyst(engine, "SELECT * FROM analytics.v_outer")) == 2

    report = privilege.analyst_access(engine, policy)

    # The view outside analytics is a door the analyst can open too, so it is named as well.
    assert found(report) == {
        ("analytics.v_inner", "", READS),
        ("analytics.v_outer", "", READS),
        ("public.orders_behind", "", READS),
    }
    assert "shop.orders (customer_id, order_id, receiver_postcode)" in detail(
        report, "analytics.v_outer"
    )


def test_a_view_calling_a_security_definer_function_fails(engine, policy, planted):
    planted(
        "CREATE FUNCTION analytics.orders_placed() RETURNS bigint LANGUAGE sql SECURITY DEFINER"
        "   AS 'SELECT count(*) FROM shop.orders';"
        " CREATE VIEW analytics.v_placed WITH (security_invoker = true) AS"
        "   SELECT analytics.orders_placed() AS orders",
        "FUNCTION analytics.orders_placed()",
        "VIEW analytics.v_placed",
    )
    assert as_analyst(engine, "SELECT orders FROM analytics.v_placed")[0].orders == 2

    report = privilege.analyst_access(engine, policy)

    assert found(report) == {("analytics.v_placed", "", DEFINER)}
    assert "analytics.orders_placed()" in detail(report, "analytics.v_placed")


def test_aggregates_a_materialized_view_and_security_invoker_views_pass(engine, policy, planted):
    planted(
        # an analyst's aggregate, materialised as a table and as a materialized view
        "CREATE TABLE analytics.adhoc_units AS SELECT i.sku, sum(i.quantity) AS units"
        "   FROM shop.order_items i GROUP BY i.sku;"
        " CREATE MATERIALIZED VIEW analytics.adhoc_units_mv AS SELECT i.sku,"
        "   sum(i.quantity) AS units FROM shop.order_items i GROUP BY i.sku;"
        # views over analytics itself, with the owner's rights and with the reader's
        " CREATE VIEW analytics.adhoc_units_view AS SELECT sku, units FROM analytics.adhoc_units;"
        " CREATE VIEW analytics.adhoc_units_invoker WITH (security_invoker = true) AS"
        "   SELECT sku, units FROM analytics.adhoc_units_mv;"
        # over the raw zone but with the reader's rights: the analyst is refused
        " CREATE VIEW analytics.adhoc_refused WITH (security_invoker = true) AS"
        "   SELECT order_id, customer_id FROM shop.orders",
        "TABLE analytics.adhoc_units",
        "MATERIALIZED VIEW analytics.adhoc_units_mv",
        "VIEW analytics.adhoc_units_view",
        "VIEW analytics.adhoc_units_invoker",
        "VIEW analytics.adhoc_refused",
    )
    with pytest.raises(sa.exc.ProgrammingError) as refused:
        as_analyst(engine, "SELECT customer_id FROM analytics.adhoc_refused")
    assert refused.value.orig.sqlstate == "42501"

    report = privilege.analyst_access(engine, policy)

    assert report.passed, report.findings


def test_the_projects_tables_and_an_analysts_views_pass_every_guard_check(engine, policy, planted):
    daily.refresh(engine, policy, run_id="night-1", as_of=AS_OF)
    planning.build_product_line_summary(engine, policy, AS_OF)
    planning.build_weekly_demand(engine, policy, AS_OF)
    planted(
        "CREATE TABLE analytics.adhoc_units AS SELECT i.sku, sum(i.quantity) AS units"
        "   FROM shop.order_items i GROUP BY i.sku;"
        " CREATE MATERIALIZED VIEW analytics.adhoc_units_mv AS SELECT i.sku,"
        "   sum(i.quantity) AS units FROM shop.order_items i GROUP BY i.sku;"
        " CREATE VIEW analytics.adhoc_units_invoker WITH (security_invoker = true) AS"
        "   SELECT sku, units FROM analytics.adhoc_units",
        "TABLE analytics.adhoc_units",
        "MATERIALIZED VIEW analytics.adhoc_units_mv",
        "VIEW analytics.adhoc_units_invoker",
    )

    reports = {check.name: check.scan(engine, policy, KEY) for check in GUARD_CHECKS}

    assert {name: (r.error, r.findings) for name, r in reports.items()} == {
        name: (None, []) for name in reports
    }
