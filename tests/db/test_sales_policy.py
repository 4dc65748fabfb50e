"""The policy's `analytics:` section: defaults, and clear errors for a zone or k that cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle.policy import Analytics, PolicyError, parse_policy
from lifecycle.sales import daily
from tests.conftest import AS_OF
from tests.db.test_sales import customers_buy, published


def parse(analytics: str):
    return parse_policy(f'version: "t"\nanalytics: {analytics}\n', Path("policy.yaml"))


def test_defaults_are_utc_and_five_customers(policy):
    assert parse("{}").analytics == Analytics(timezone="UTC", min_customers_per_cell=5)
    assert policy.analytics.min_customers_per_cell >= 5


def test_a_zone_that_is_not_iana_is_refused_naming_file_field_and_fix():
    with pytest.raises(PolicyError) as err:
        parse("{timezone: Mars/Olympus}")
    assert str(err.value) == (
        "policy.yaml: analytics.timezone: not an IANA time zone; write one such as "
        "'Asia/Shanghai', 'Europe/Berlin' or 'UTC' (got 'Mars/Olympus')"
    )


def test_k_below_one_and_unknown_keys_are_refused():
    with pytest.raises(PolicyError) as err:
        parse("{min_customers_per_cell: 0, min_customer: 3}")
    assert err.value.problems == [
        "policy.yaml: analytics.min_customers_per_cell: must be a whole number of customers, 1 or more (got 0)",
        "policy.yaml: analytics.min_customer: Extra inputs are not permitted (got 3); "
        "remove it or check its spelling against docs/policy.md",
    ]


def test_a_zone_the_server_does_not_know_stops_the_build_and_publishes_nothing(engine, policy):
    with engine.begin() as conn:
        customers_buy(conn, 1, [1, 2, 3, 4, 5, 6])
    unknown = policy.model_copy(
        update={
            "analytics": Analytics.model_construct(
                timezone="Atlantis/Capital", min_customers_per_cell=5
            )
        }
    )
    with pytest.raises(
        daily.SalesError,
        match="analytics.timezone: 'Atlantis/Capital' is not known to the PostgreSQL",
    ):
        daily.refresh(engine, unknown, run_id="night", as_of=AS_OF)
    assert published(engine) == {}
    assert daily.refresh(engine, policy, run_id="night", as_of=AS_OF).total("units_published") == 6
