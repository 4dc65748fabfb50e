"""Upgrading a shop whose summary was published with sliding windows (migration 0250): each row
keeps the days it showed, the 91-day rows go, and the first build after it is still audited
against the last copy's sliding windows, placed over the days they covered."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from lifecycle import db, schema, synthetic
from lifecycle.sales import blocks
from lifecycle.sales.differencing import differencing_remainders
from tests.conftest import AS_OF
from tests.db.test_sales_planning import nightly_planning, rows

SUNDAY = date(2026, 5, 31)  # the last copy published before the upgrade
_OLD_ROWS = """
INSERT INTO analytics.product_line_summary (as_of_date, window_days, level, product_line, sku,
    orders, units, revenue, units_share_pct, customers)
VALUES (:d, 7, 'all', 'OTHER', 'OTHER', 9, 9, 90, 100, 9),
       (:d, 28, 'all', 'OTHER', 'OTHER', 30, 30, 300, 100, 30),
       (:d, 91, 'all', 'OTHER', 'OTHER', 90, 90, 900, 100, 90);
INSERT INTO lifecycle.published_summary_rows (as_of_date, window_days, level, product_line, sku)
SELECT as_of_date, window_days, level, product_line, sku FROM analytics.product_line_summary
"""


@pytest.fixture
def engine_at_0240(database_url):
    """A database of its own, migrated to the revision before the windows were blocks."""
    name = f"{database_url.database}_upgrade"
    db.drop_database(database_url, name)
    db.ensure_database(database_url, name)
    engine = db.create_engine(database_url.set(database=name))
    schema.upgrade(engine, "0240")
    yield engine
    engine.dispose()
    db.drop_database(database_url, name)


def test_an_upgrade_keeps_the_days_each_row_showed_and_audits_against_the_sliding_copy(
    engine_at_0240, policy, monkeypatch
):
    engine = engine_at_0240
    monkeypatch.setattr(blocks, "EPOCH", date(2001, 1, 1))  # 2026-05-31 ends no 28-day block
    with engine.begin() as conn:
        for statement in _OLD_ROWS.split(";"):
            conn.execute(sa.text(statement), {"d": SUNDAY})
    schema.upgrade(engine)
    assert rows(
        engine,
        "SELECT window_days, window_start, window_end FROM analytics.product_line_summary "
        "ORDER BY 1",
    ) == [(7, date(2026, 5, 25), SUNDAY), (28, date(2026, 5, 4), SUNDAY)]
    assert rows(
        engine, "SELECT window_days, window_end FROM lifecycle.published_summary_rows ORDER BY 1"
    ) == [(7, SUNDAY), (28, SUNDAY), (91, SUNDAY)]
    synthetic.seed_shop(engine, orders=1500, seed=1, as_of=AS_OF + timedelta(days=7))
    summary, weekly = nightly_planning(engine, policy, AS_OF + timedelta(days=7))
    assert summary.audited_against == weekly.audited_against == SUNDAY
    assert {
        "product_line_summary_28d_sliding_earlier",
        "product_line_summary_91d_sliding_earlier",
    } <= set(summary.earlier_parts)
    assert "product_line_summary_7d_sliding_earlier" not in summary.earlier_parts  # a block
    assert rows(
        engine, "SELECT DISTINCT window_days FROM analytics.product_line_summary ORDER BY 1"
    ) == [(7,), (28,), (84,)]
    assert differencing_remainders(engine, policy).passed
