"""The small-cell check reads every published count, whatever its numeric type, on real PostgreSQL:
a count under k, negative or not a number fails; so does a row of no customers that carries units;
an empty week and the project's own tables pass."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from lifecycle.checks import CheckResult
from lifecycle.guard import cells, changes
from lifecycle.sales import daily, planning
from tests.conftest import AS_OF


@pytest.fixture
def plant(engine):
    """Creates an analytics table from SQL text as an analyst's notebook would; dropped after."""
    planted: list[str] = []

    def create(name: str, sql: str) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE analytics.{name} {sql}"))
        planted.append(name)

    yield create
    with engine.begin() as conn:
        for name in planted:
            conn.execute(sa.text(f"DROP TABLE analytics.{name}"))


def found(report: CheckResult) -> set[tuple[str, str, str, int]]:
    return {(f.table, f.column, f.kind, f.count) for f in report.findings}


@pytest.mark.parametrize("count_type", ["double precision", "real", "numeric(12,0)", "numeric"])
def test_a_count_of_any_numeric_type_is_read(engine, policy, plant, count_type):
    plant(
        "adhoc_cells",
        f"(region text, customers {count_type}); "
        "INSERT INTO analytics.adhoc_cells VALUES ('SH', 2), ('BJ', 4.4), ('GZ', 5), ('SZ', 0)",
    )
    report = cells.small_cells(engine, policy)
    assert found(report) == {("analytics.adhoc_cells", "customers", "small_cell", 2)}


def test_a_negative_or_not_a_number_count_is_a_finding(engine, policy, plant):
    plant(
        "adhoc_signed",
        "(region text, customers bigint); "
        "INSERT INTO analytics.adhoc_signed VALUES ('SH', -1), ('BJ', 7), ('GZ', -100)",
    )
    plant(
        "adhoc_nan",
        "(region text, customers double precision); "
        "INSERT INTO analytics.adhoc_nan VALUES ('SH', 'NaN'), ('BJ', '-Infinity'), ('GZ', 9)",
    )
    report = cells.small_cells(engine, policy)
    assert found(report) == {
        ("analytics.adhoc_signed", "customers", "small_cell", 2),
        ("analytics.adhoc_nan", "customers", "small_cell", 2),
    }
    assert "negative" in report.findings[0].detail


def test_a_row_of_no_customers_carrying_units_is_a_finding_and_an_empty_week_is_not(
    engine, policy, plant
):
    plant(
        "adhoc_weeks",
        "(week date, units bigint, customers integer); INSERT INTO analytics.adhoc_weeks VALUES"
        " ('2026-05-04', 0, 0), ('2026-05-11', 3, 0), ('2026-05-18', -2, 0), ('2026-05-25', 40, 6)",
    )
    report = cells.small_cells(engine, policy)
    assert found(report) == {("analytics.adhoc_weeks", "customers", "units_without_customers", 2)}
    assert "units" in report.findings[0].detail


def test_the_projects_own_tables_pass_with_their_empty_weeks(engine, policy):
    daily.refresh(engine, policy, run_id="night-1", as_of=AS_OF)
    planning.build_product_line_summary(engine, policy, AS_OF)
    planning.build_weekly_demand(engine, policy, AS_OF)
    with engine.begin() as conn:
        conn.execute(
            sa.text("""
            INSERT INTO analytics.sales_volume_daily VALUES ('2026-05-30', 'SKU-1', 'SH', 9, 9, 90, 5);
            INSERT INTO analytics.weekly_demand VALUES
                ('2026-05-18', 'sku_region', 'ALL', 'SKU-1', 'SH', 0, 0, 0, 0);
        """)
        )
    report = cells.small_cells(engine, policy)
    assert report.passed, report.findings
    assert report.scanned["relations"] == 3


def test_a_relation_passed_clean_under_the_former_rules_is_read_again_under_these(
    engine, policy, plant, monkeypatch
):
    plant(
        "adhoc_signed",
        "(region text, customers bigint); INSERT INTO analytics.adhoc_signed VALUES ('SH', -1)",
    )
    former = "customers IS NULL OR (customers > 0 AND customers < {k})"
    with monkeypatch.context() as before:
        before.setattr(cells, "_SMALL", former)
        with changes.incremental(AS_OF, timedelta(days=7)):
            assert cells.small_cells(engine, policy).passed  # the miss, stored as clean
    with changes.incremental(AS_OF + timedelta(days=1), timedelta(days=7)):
        report = cells.small_cells(engine, policy)
    assert report.scanned["full_scan"] is False and report.scanned["relations_scanned"] >= 1
    assert found(report) == {("analytics.adhoc_signed", "customers", "small_cell", 1)}
