"""The policy's logistics section: the allow-list cannot be widened, and each mistake names its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle.policy import LOGISTICS_FIELDS, PolicyError, load_policy, parse_policy
from lifecycle.settings import PROJECT_DIR

PATH = Path("policy.yaml")


def logistics(body: str):
    return parse_policy('version: "1"\nlogistics:\n' + body, PATH).logistics


def problems(body: str) -> str:
    with pytest.raises(PolicyError) as failure:
        logistics(body)
    return str(failure.value)


def test_the_project_policy_hands_off_the_allow_list_to_its_carriers():
    section = load_policy(PROJECT_DIR / "policy.yaml").logistics
    assert set(section.fields) <= set(LOGISTICS_FIELDS)
    assert section.role_carriers and section.csv_carriers


def test_without_a_section_nothing_goes_to_any_carrier():
    section = parse_policy('version: "1"\n', PATH).logistics
    assert section.carriers == {} and section.role_carriers == [] and section.csv_carriers == []


@pytest.mark.parametrize(
    "field", ["receiver_email", "payment_ref", "customer_id", "unit_price", "sku"]
)
def test_a_field_outside_the_allow_list_is_refused_at_load(field):
    message = problems(f"  fields: [receiver_name, {field}]\n")
    assert f"policy.yaml: logistics.fields: '{field}' may not go to carriers" in message
    assert "remove it from logistics.fields" in message
    assert "did you mean" not in message  # refused on purpose, not taken for a typo


def test_a_misspelt_field_is_refused_with_a_suggestion():
    message = problems("  fields: [reciever_phone]\n")
    assert "'reciever_phone' (did you mean 'receiver_phone'?) may not go to carriers" in message


def test_order_id_and_carrier_always_go_and_need_not_be_listed():
    assert logistics(
        "  fields: [order_id, carrier, receiver_address, receiver_address]\n"
    ).fields == ("receiver_address",)


def test_carrier_names_must_be_identifiers_that_fit_a_role_name():
    assert "'SF-Express' is not a usable carrier name" in problems(
        "  carriers: {SF-Express: {role: true}}\n"
    )
    long_name = "c" * 46
    assert f"'{long_name}' is not a usable carrier name" in problems(
        f"  carriers: {{{long_name}: {{csv: true}}}}\n"
    )
    assert "at most 45 characters" in problems(f"  carriers: {{{long_name}: {{csv: true}}}}\n")


def test_a_carrier_that_receives_nothing_is_refused():
    assert (
        "policy.yaml: logistics.carriers.sf_express: receives nothing; set role: true and/or csv: true"
        in problems("  carriers: {sf_express: {role: false}}\n")
    )


def test_an_unknown_way_of_receiving_is_named():
    assert "logistics.carriers.sf_express.sftp" in problems(
        "  carriers: {sf_express: {sftp: true}}\n"
    )


def test_role_and_csv_carriers_are_told_apart():
    section = logistics(
        "  carriers:\n    a: {role: true}\n    b: {csv: true}\n    c: {role: true, csv: true}\n"
    )
    assert section.role_carriers == ["a", "c"] and section.csv_carriers == ["b", "c"]
