"""`lifecycle logistics refresh`: the on-demand refresh proves the hand-off before writing any file."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner

from cli import main
from tests.carriers import ALL_FIELDS, CARRIERS_POLICY, add_pending
from tests.shop import PERSONAL


def run(database_url, policy_file, exports):
    env = {
        "LIFECYCLE_DATABASE_URL": database_url.render_as_string(hide_password=False),
        "LIFECYCLE_POLICY": str(
            policy_file(CARRIERS_POLICY.format(fields=ALL_FIELDS, batch_size=50_000))
        ),
        "LIFECYCLE_EXPORT_DIR": str(exports),
    }
    return CliRunner().invoke(main, ["logistics", "refresh"], env=env)


def test_refresh_on_demand_hands_off_and_writes_the_carrier_files(
    engine, database_url, policy_file, tmp_path
):
    with engine.begin() as conn:
        add_pending(conn, 1, "sf_express")
        add_pending(conn, 2, "zto_express")
    result = run(database_url, policy_file, tmp_path / "exports")
    assert result.exit_code == 0, result.output
    assert "sf_express: 1 pending deliveries" in result.output and "checks passed" in result.output
    assert "sf_express: 1 rows in sf_express/deliveries.csv" in result.output
    assert "zto_express: no file, reads its rows as database role" in result.output
    assert "{'" not in result.output
    assert (tmp_path / "exports" / "logistics" / "sf_express" / "deliveries.csv").exists()
    assert not any(value in result.output for value in PERSONAL.values())


def test_refresh_on_demand_writes_no_file_when_a_check_fails(
    engine, database_url, policy_file, tmp_path
):
    with engine.begin() as conn:
        add_pending(conn, 1, "sf_express")
    assert (
        run(database_url, policy_file, tmp_path / "first").exit_code == 0
    )  # roles exist from here on
    with engine.begin() as conn:
        conn.execute(
            sa.text("GRANT USAGE ON SCHEMA shop TO PUBLIC; GRANT SELECT ON shop.orders TO PUBLIC")
        )
    try:
        result = run(database_url, policy_file, tmp_path / "second")
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "REVOKE ALL ON shop.orders FROM PUBLIC; REVOKE ALL ON SCHEMA shop FROM PUBLIC"
                )
            )
    assert result.exit_code == 1
    assert "checks failed, no carrier file was written" in result.output
    assert "shop.orders: relation_readable" in result.output
    assert "lifecycle_carrier_sf_express can read it" in result.output
    assert not (tmp_path / "second").exists()
