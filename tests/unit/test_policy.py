"""The policy file: each kind of mistake gets an error naming the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle.policy import PolicyError, load_policy, parse_policy
from lifecycle.settings import PROJECT_DIR

PATH = Path("policy.yaml")


def problems(text: str) -> str:
    with pytest.raises(PolicyError) as failure:
        parse_policy(text, PATH)
    return str(failure.value)


def test_the_project_policy_is_valid_and_fingerprinted():
    policy = load_policy(PROJECT_DIR / "policy.yaml")
    assert policy.retention.after_sales_window_days == 30
    assert policy.raw.orders.sql == '"shop"."orders"'
    assert len(policy.sha256) == 64 and policy.short_hash == policy.sha256[:12]


def test_defaults_are_the_reference_schema():
    policy = parse_policy('version: "1"\n', PATH)
    assert policy.raw.orders.table == "shop.orders"
    assert policy.raw.orders.columns["delivered_at"] == "delivered_at"
    assert "note" in policy.raw.after_sales_cases.personal_columns
    assert policy.retention.abandoned_after_days == 90


def test_the_hash_changes_with_the_content():
    a = parse_policy('version: "1"\n', PATH)
    b = parse_policy('version: "1"\nretention: {after_sales_window_days: 31}\n', PATH)
    assert a.sha256 != b.sha256


def test_negative_window_is_rejected_with_the_fix():
    message = problems('version: "1"\nretention:\n  after_sales_window_days: -5\n')
    assert "policy.yaml: retention.after_sales_window_days:" in message
    assert "(got -5)" in message and "0 or more" in message


def test_misspelt_field_is_named():
    message = problems('version: "1"\nretention:\n  after_sales_windows_days: 30\n')
    assert "retention.after_sales_windows_days" in message and "check its spelling" in message


def test_unknown_table_is_named():
    message = problems('version: "1"\nraw:\n  customers: {table: shop.customers}\n')
    assert "unknown raw table(s) ['customers']" in message


def test_unknown_column_role_is_named():
    message = problems('version: "1"\nraw:\n  orders:\n    columns: {shipped_on: shipped_date}\n')
    assert "orders.columns: unknown role(s) ['shipped_on']" in message


def test_column_names_must_be_plain_identifiers():
    message = problems(
        'version: "1"\nraw:\n  orders:\n    personal_columns: ["name; DROP TABLE x"]\n'
    )
    assert "raw.orders.personal_columns" in message and "not a lowercase SQL column name" in message


def test_table_must_be_schema_qualified():
    message = problems('version: "1"\nraw:\n  orders: {table: orders}\n')
    assert "raw.orders.table" in message and "schema.table" in message


def test_missing_version_is_named():
    assert "policy.yaml: version: Field required; add it" in problems("retention: {}\n")


def test_broken_yaml_names_the_line():
    assert "policy.yaml: line 2: not valid YAML" in problems('version: "1"\nretention: : x\n')


def test_missing_file_says_how_to_fix(tmp_path):
    with pytest.raises(PolicyError) as failure:
        load_policy(tmp_path / "nowhere.yaml")
    assert "file not found; set LIFECYCLE_POLICY" in str(failure.value)
