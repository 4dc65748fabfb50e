"""The policy's controller section: who answers for the processing, and a lawful basis for each purpose."""

from pathlib import Path

import pytest

from lifecycle.policy import PolicyError, load_policy, parse_policy
from lifecycle.settings import PROJECT_DIR

PATH = Path("policy.yaml")
CONTROLLER = """version: "1"
controller:
  name: Shop
  contact: privacy@shop.example
  purposes:
    - {{name: delivery, legal_basis: {basis}, description: parcel delivery}}
"""


def test_the_project_policy_names_the_controller_and_a_basis_for_each_purpose():
    controller = load_policy(PROJECT_DIR / "policy.yaml").controller
    assert controller is not None and controller.purposes
    assert {p.legal_basis for p in controller.purposes} <= {
        "consent",
        "contract",
        "legal_obligation",
        "vital_interests",
        "public_task",
        "legitimate_interests",
    }


def test_a_purpose_without_a_lawful_basis_is_refused_naming_the_field():
    with pytest.raises(PolicyError) as failure:
        parse_policy(CONTROLLER.format(basis="marketing"), PATH)
    assert "controller.purposes.0.legal_basis" in str(failure.value)
    assert (
        parse_policy(CONTROLLER.format(basis="contract"), PATH).controller.purposes[0].name
        == "delivery"
    )


def test_a_controller_needs_at_least_one_purpose():
    with pytest.raises(PolicyError) as failure:
        parse_policy('version: "1"\ncontroller: {name: Shop, contact: x, purposes: []}\n', PATH)
    assert "controller.purposes" in str(failure.value)


def test_a_policy_without_a_controller_stays_valid():
    assert parse_policy('version: "1"\n', PATH).controller is None
