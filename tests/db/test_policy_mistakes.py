"""Mistakes in policy.yaml that once passed the check and then changed data: each is now refused."""

from __future__ import annotations

import pytest

from lifecycle.policy import PolicyError, check_policy_against_database, load_policy
from lifecycle.settings import PROJECT_DIR


def test_a_misspelt_personal_column_is_named_as_unknown_not_as_a_correctable_problem(
    engine, policy_file
):
    text = (
        (PROJECT_DIR / "policy.yaml")
        .read_text()
        .replace("personal_columns: [receiver_name,", "personal_columns: [reciever_name,")
    )
    assert "reciever_name" in text and "correctable_columns: [receiver_name" in text
    with pytest.raises(PolicyError) as failure, engine.connect() as conn:
        check_policy_against_database(load_policy(policy_file(text)), conn)
    message = str(failure.value)
    assert (
        "policy.yaml: raw.orders.personal_columns: column 'reciever_name' not in shop.orders "
        "(did you mean 'receiver_name'?)" in message
    )
    assert "correctable_columns" not in message
