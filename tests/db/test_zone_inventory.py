"""The guard asset's relations table: an estimate of rows a person can read, never a blank."""

import sqlalchemy as sa

from lifecycle.guard import zone


def test_rows_estimate_says_not_analysed_then_the_planner_figure(engine):
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE analytics.zone_probe AS SELECT g AS n FROM generate_series(1, 1500) g"
            )
        )
        conn.execute(
            sa.text("CREATE VIEW analytics.zone_probe_view AS SELECT n FROM analytics.zone_probe")
        )
    try:
        rows = zone.zone_inventory(engine).table().rows
        assert ("analytics.zone_probe", "table", "not analysed yet") in rows
        assert ("analytics.zone_probe_view", "view", "– (no rows of its own)") in rows
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE analytics.zone_probe"))
        assert ("analytics.zone_probe", "table", "1,500") in zone.zone_inventory(
            engine
        ).table().rows
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE analytics.zone_probe CASCADE"))
