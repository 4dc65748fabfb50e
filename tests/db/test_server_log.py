"""PostgreSQL's own server log: the check warns while the server would write statements' text or
their parameters to it, and is quiet once the DBA's settings keep them out.

Settings are changed with ALTER DATABASE on the test's own database only."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.server_log import server_log_keeps_no_values
from lifecycle import db
from lifecycle.retention.server_log import RECOMMENDED, server_log_settings
from lifecycle.settings import PROJECT_DIR
from orchestration.resources import ShopDatabase
from tests.test_cli import lifecycle


@pytest.fixture
def set_database(engine):
    """set_database(**settings): ALTER DATABASE <this test's database> SET each, seen by new
    connections; the test database's own settings (conftest: RECOMMENDED) are put back after."""
    name = engine.url.database

    def alter(**settings: str) -> None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for setting, value in settings.items():
                conn.execute(sa.text(f"ALTER DATABASE \"{name}\" SET {setting} = '{value}'"))
        # Pooled connections keep the settings they started with: this engine's and the shared
        # ones (lifecycle.db.engine_for) the Dagster resource uses.
        engine.dispose()
        db.dispose_engines()

    yield alter
    alter(**RECOMMENDED)


def flagged(engine) -> set[str]:
    return {finding.column for finding in server_log_settings(engine).findings}


def test_safe_settings_pass_and_each_risky_one_is_named(engine, set_database):
    set_database(**RECOMMENDED)
    result = server_log_settings(engine)
    assert result.passed and result.scanned == {"settings": 9}

    set_database(log_min_error_statement="error")  # PostgreSQL's default
    assert flagged(engine) == {"log_min_error_statement"}
    set_database(log_parameter_max_length_on_error="-1")
    assert flagged(engine) == {"log_min_error_statement", "log_parameter_max_length_on_error"}
    set_database(log_min_error_statement="log")  # failing statements no longer logged
    assert flagged(engine) == set()

    set_database(log_statement="mod")
    assert flagged(engine) == {"log_statement"}  # parameters are cut to 0 characters
    set_database(log_parameter_max_length="-1")
    result = server_log_settings(engine)
    assert {f.column for f in result.findings} == {"log_statement", "log_parameter_max_length"}
    assert not result.passed
    assert "log_parameter_max_length = 0" in result.description()

    set_database(log_statement="none", log_min_duration_statement="0")
    assert flagged(engine) == {"log_min_duration_statement", "log_parameter_max_length"}
    set_database(log_min_duration_statement="-1", log_transaction_sample_rate="0.5")
    assert flagged(engine) == {"log_transaction_sample_rate", "log_parameter_max_length"}

    set_database(**RECOMMENDED)
    assert server_log_settings(engine).passed


def test_policy_check_and_the_dagster_check_warn_while_the_server_logs_parameters(
    engine, database_url, set_database, tmp_path
):
    set_database(log_statement="all", log_parameter_max_length="-1")
    shop = ShopDatabase(
        url=database_url.render_as_string(hide_password=False),
        policy_path=str(PROJECT_DIR / "policy.yaml"),
    )

    cli = lifecycle("policy", "check", url=database_url, tmp_path=tmp_path)
    verdict = server_log_keeps_no_values(shop=shop)

    assert cli.returncode == 0, cli.stderr  # a warning, not a refusal
    assert "warning: PostgreSQL server log: log_statement: 'all' logs" in cli.stdout
    assert "set log_parameter_max_length = 0" in cli.stdout
    assert not verdict.passed and verdict.severity == dg.AssetCheckSeverity.WARN
    assert verdict.metadata["failed_on"].value == [
        "server log.log_parameter_max_length",
        "server log.log_statement",
    ]

    set_database(**RECOMMENDED)
    cli = lifecycle("policy", "check", url=database_url, tmp_path=tmp_path)
    assert cli.returncode == 0 and "warning" not in cli.stdout, cli.stdout
    shop.engine().dispose()  # its pooled connection keeps the settings it started with
    assert server_log_keeps_no_values(shop=shop).passed
