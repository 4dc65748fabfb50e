"""A window's top row (its all row) is recognised from its key, however the data's labels read.

The summary build spares a window's all row once before withholding it (planning._spare_top_rows):
it merges the smallest product lines into it instead, since merging a top row withholds every
line in it. It tells a top row by its key, built in SQL; a product line or sku named OTHER, or
holding a '|', is escaped there (rollup.key_label), so no row of the data is taken for one."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from lifecycle.sales import planning, rollup
from lifecycle.sales.source import Source
from tests.conftest import AS_OF
from tests.db.test_sales import add_sale, noon
from tests.db.test_sales_planning import catalogue, k3_with_catalogue


def test_only_a_top_rows_key_reads_as_one(engine, policy_file):
    policy = k3_with_catalogue(policy_file)
    day = planning.window_end(AS_OF.date())
    with engine.begin() as conn:
        catalogue(conn, OTHER=["OTHER", "a|b"], tea=["\\OTHER", ""])
        for n, sku in enumerate(["OTHER", "a|b", "\\OTHER", ""], start=1):
            add_sale(conn, n, n, noon(day - timedelta(days=n)), sku=sku, region="OTHER")
    with engine.begin() as conn:
        first, after = planning.lines_span(day)
        rollup.load_lines(conn, Source(policy), policy.raw.catalogue, first, after)
        parts = [planning.weekly_partition(day)]
        parts += [planning.window_partition(day, days) for days in planning.WINDOWS]
        for part in parts:
            for n, level in enumerate(part.levels):
                sql = (
                    f"SELECT DISTINCT {part.key(level)} FROM pg_temp.sales_lines WHERE {part.span}"
                )
                keys = conn.execute(sa.text(sql)).scalars().all()
                assert keys, (part.name, level.name)
                top = n == len(part.levels) - 1
                assert [planning._top_row(part, key) for key in keys] == [top] * len(keys), (
                    part.name,
                    level.name,
                    keys,
                )
