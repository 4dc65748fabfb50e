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


# ---------------------------------------------------------------- mistakes that change data


def test_two_roles_on_one_column_are_refused_naming_both():
    message = problems('version: "1"\nraw:\n  orders:\n    columns: {purged_at: cancelled_at}\n')
    assert "raw: Value error, orders.columns" not in message
    assert (
        "orders.columns: roles 'cancelled_at' and 'purged_at' both map to column 'cancelled_at'"
        in message
    )


def test_a_key_given_twice_is_refused_naming_its_line():
    text = (
        'version: "1"\nretention:\n  after_sales_window_days: 30\n'
        "  batch_size: 100\n  after_sales_window_days: 0\n"
    )
    message = problems(text)
    assert "policy.yaml: line 5: not valid YAML" in message
    assert "key 'after_sales_window_days' appears twice in one mapping (first on line 3)" in message


def test_a_top_level_key_given_twice_is_refused_too():
    message = problems('version: "1"\nretention: {}\nversion: "2"\n')
    assert "line 3" in message and "key 'version' appears twice" in message


def test_the_same_key_in_two_mappings_is_fine():
    policy = parse_policy(
        'version: "1"\nraw:\n  orders: {table: shop.orders}\n  order_items: {table: shop.order_items}\n',
        PATH,
    )
    assert policy.raw.order_items.table == "shop.order_items"


@pytest.mark.parametrize(
    "field", ["after_sales_window_days", "cancelled_retention_days", "abandoned_after_days"]
)
def test_a_window_of_a_million_days_is_refused_at_load(field):
    message = problems(f'version: "1"\nretention:\n  {field}: 1000000\n')
    assert f"policy.yaml: retention.{field}: Input should be less than or equal to 3650" in message
    assert "(got 1000000)" in message


def test_a_window_of_ten_years_is_accepted():
    policy = parse_policy('version: "1"\nretention: {after_sales_window_days: 3650}\n', PATH)
    assert policy.retention.after_sales_window_days == 3650


def test_a_zero_window_needs_its_acknowledgement():
    message = problems('version: "1"\nretention: {after_sales_window_days: 0}\n')
    assert "policy.yaml: retention.after_sales_window_days: 0 days clears" in message
    assert "acknowledge: [zero_window]" in message
    policy = parse_policy(
        'version: "1"\nacknowledge: [zero_window]\nretention: {after_sales_window_days: 0}\n',
        PATH,
    )
    assert policy.retention.after_sales_window_days == 0


def test_k_of_one_needs_its_acknowledgement():
    message = problems('version: "1"\nanalytics: {min_customers_per_cell: 1}\n')
    assert "policy.yaml: analytics.min_customers_per_cell: 1 publishes cells" in message
    policy = parse_policy(
        'version: "1"\nacknowledge: [k_of_one]\nanalytics: {min_customers_per_cell: 1}\n', PATH
    )
    assert policy.analytics.min_customers_per_cell == 1


def test_an_acknowledgement_with_nothing_to_acknowledge_is_refused():
    message = problems('version: "1"\nacknowledge: [zero_window]\n')
    assert (
        "policy.yaml: acknowledge: 'zero_window' is given but no retention window is 0" in message
    )
    assert "acknowledge.0" in problems('version: "1"\nacknowledge: [short_windows]\n')


def test_empty_personal_columns_of_orders_are_refused():
    message = problems('version: "1"\nraw:\n  orders:\n    personal_columns: []\n')
    assert "orders.personal_columns is empty" in message


def test_a_misspelt_personal_column_is_not_taken_for_a_correctable_problem():
    """The catalog check names it (tests/db/test_policy_database.py); the file alone is fine."""
    text = (
        'version: "1"\nraw:\n  orders:\n    personal_columns: [reciever_name, receiver_phone, '
        "receiver_email, receiver_address, receiver_postcode, payment_ref]\n"
        "requests:\n  correctable_columns: [receiver_name, receiver_phone]\n"
    )
    policy = parse_policy(text, PATH)
    assert policy.raw.orders.personal_columns[0] == "reciever_name"


# ---------------------------------------------------------------- files that are not a policy


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_bytes(b'version: "1"\n# caf\xe9\n')
    with pytest.raises(PolicyError) as failure:
        load_policy(path)
    assert f"{path}: line 2: not UTF-8 text" in str(failure.value)
    assert "save the file as UTF-8" in str(failure.value)


def test_a_folder_given_as_the_policy_is_named(tmp_path):
    with pytest.raises(PolicyError) as failure:
        load_policy(tmp_path)
    assert f"{tmp_path}: is a folder, not a file; set LIFECYCLE_POLICY" in str(failure.value)
