"""The run history quotes the project's own names (steps, assets, checks, metadata labels, the
analytics zone's relations) and the policy's time zone: a customer's one-word city equal to a word
inside one (`Sales` in `refreshed_sales_volume`, `Sao Paulo` in `America/Sao_Paulo`) is not a
leak; the same value written as words in a log text still is (docs/guard.md, own names)."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import yaml

from lifecycle.guard import checks
from lifecycle.guard.key import GuardKey
from lifecycle.settings import PROJECT_DIR
from orchestration.history_scan import run_history_check
from orchestration.resources import ShopDatabase
from tests.dagster.test_guard_checks import an_earlier_night_logging, nightly, verdicts
from tests.shop import add_delivered

NOW = datetime.now(UTC)
KEY = GuardKey(b"test-guard-key-not-for-production")


@pytest.fixture
def shop(engine, database_url, tmp_path):
    """A shop in Brazil's time zone with an order in service to `Sales`, at `Sao Paulo`."""
    policy = yaml.safe_load((PROJECT_DIR / "policy.yaml").read_text())
    policy["analytics"]["timezone"] = "America/Sao_Paulo"
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    with engine.begin() as conn:
        add_delivered(
            conn, 1, NOW - timedelta(days=2), receiver_name="Sales", receiver_address="Sao Paulo"
        )
    return ShopDatabase(
        url=database_url.render_as_string(hide_password=False), policy_path=str(path)
    )


def test_the_projects_own_names_and_time_zone_are_not_a_customers_city(shop, engine):
    with dg.DagsterInstance.ephemeral() as instance:
        result = nightly(shop, instance)
        assert verdicts(result)["no_raw_values_in_run_history"], [
            e.description
            for e in result.get_asset_check_evaluations()
            if e.check_name == checks.RUN_HISTORY_CHECK
        ]
        assert result.success
        alone = run_history_check(instance, run_ids=[result.run_id]).run(
            engine, shop.policy(), KEY, None, NOW.date()
        )
    assert alone.passed, alone.description()


@pytest.mark.parametrize(
    "message", ["parcel left for Sao Paulo", "customer Sales called", "tz America/Sao Paulo"]
)
def test_the_same_words_written_as_words_are_still_caught(shop, engine, message):
    with dg.DagsterInstance.ephemeral() as instance:
        an_earlier_night_logging(instance, message)
        result = nightly(shop, instance)
        assert not verdicts(result)["no_raw_values_in_run_history"]
        [earlier] = [r for r in instance.get_run_ids() if r != result.run_id]
        alone = run_history_check(instance, run_ids=[earlier]).run(
            engine, shop.policy(), KEY, None, NOW.date()
        )
    assert not alone.passed
    assert "Sales" not in alone.description() and "Sao" not in alone.description()
