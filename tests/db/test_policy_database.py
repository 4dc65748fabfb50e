"""The policy against the live database: names that do not exist fail before anything is purged."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from lifecycle.policy import PolicyError, check_policy_against_database, load_policy
from lifecycle.retention import purge
from tests.conftest import AS_OF


def check(engine, path):
    with engine.connect() as conn:
        check_policy_against_database(load_policy(path), conn)


def test_personal_column_missing_from_the_table_suggests_the_right_one(engine, policy_file):
    path = policy_file('version: "1"\nraw:\n  orders:\n    personal_columns: [reciever_name]\n')
    with pytest.raises(PolicyError) as failure:
        check(engine, path)
    assert (
        "policy.yaml: raw.orders.personal_columns: column 'reciever_name' not in shop.orders "
        "(did you mean 'receiver_name'?)"
    ) in str(failure.value)


def test_unknown_table_suggests_the_right_one(engine, policy_file):
    path = policy_file('version: "1"\nraw:\n  orders: {table: shop.order}\n')
    with pytest.raises(PolicyError) as failure:
        check(engine, path)
    message = str(failure.value)
    assert (
        "raw.orders.table: table 'shop.order' not found" in message
        and "did you mean 'shop.orders'" in message
    )


def test_a_personal_column_that_cannot_be_cleared_is_refused(engine, policy):
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE shop.orders ALTER COLUMN payment_ref SET NOT NULL"))
    try:
        with pytest.raises(PolicyError) as failure, engine.connect() as conn:
            check_policy_against_database(policy, conn)
        assert "column 'payment_ref' of shop.orders is NOT NULL" in str(failure.value)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE shop.orders ALTER COLUMN payment_ref DROP NOT NULL"))


LEGACY = """
CREATE SCHEMA legacy;
CREATE TABLE legacy.purchase (id bigint PRIMARY KEY, buyer bigint NOT NULL, state text NOT NULL,
    created timestamptz NOT NULL, paid timestamptz, sent timestamptz, received timestamptz,
    voided timestamptz, province text, contact_name text, mobile text, mail text, cleared timestamptz);
CREATE TABLE legacy.purchase_line (purchase bigint, n int, article text, qty int, price numeric);
CREATE TABLE legacy.ticket (id bigint, purchase bigint, type text, opened timestamptz,
    closed timestamptz, memo text);
"""

LEGACY_POLICY = """version: legacy-1
raw:
  orders:
    table: legacy.purchase
    columns: {order_id: id, customer_id: buyer, status: state, placed_at: created, paid_at: paid,
              shipped_at: sent, delivered_at: received, cancelled_at: voided, ship_region: province,
              purged_at: cleared}
    personal_columns: [contact_name, mobile, mail]
  order_items:
    table: legacy.purchase_line
    columns: {order_id: purchase, line_no: n, sku: article, quantity: qty, unit_price: price}
  after_sales_cases:
    table: legacy.ticket
    columns: {case_id: id, order_id: purchase, kind: type, opened_at: opened, closed_at: closed}
    personal_columns: [memo]
"""


def test_a_shop_with_other_names_is_purged_through_its_mapping(engine, policy_file):
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS legacy CASCADE"))
        conn.execute(sa.text(LEGACY))
        conn.execute(
            sa.text("""
            INSERT INTO legacy.purchase VALUES
              (1, 9, 'delivered', :old, :old, :old, :old, NULL, 'SH', 'Li Lei', '13800138000', 'li@example.com', NULL),
              (2, 9, 'delivered', :new, :new, :new, :new, NULL, 'SH', 'Han Meimei', '13900139000', 'han@example.com', NULL)
        """),
            {"old": AS_OF - timedelta(days=100), "new": AS_OF - timedelta(days=1)},
        )
        conn.execute(
            sa.text(
                "INSERT INTO legacy.ticket VALUES (1, 1, 'return', :old, :old, 'Li Lei called')"
            ),
            {"old": AS_OF - timedelta(days=100)},
        )
    try:
        policy = load_policy(policy_file(LEGACY_POLICY))
        with engine.connect() as conn:
            check_policy_against_database(policy, conn)
        report = purge.run_purge(engine, policy, run_id="legacy", as_of=AS_OF)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT id, contact_name, mobile, mail, cleared IS NOT NULL FROM legacy.purchase ORDER BY id"
                )
            ).all()
            memo = conn.execute(sa.text("SELECT memo FROM legacy.ticket")).scalar()
        assert report.purged == 1
        assert rows == [
            (1, None, None, None, True),
            (2, "Han Meimei", "13900139000", "han@example.com", False),
        ]
        assert memo is None
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA legacy CASCADE"))


def refused(engine, path, setup: str, teardown: str) -> list[str]:
    """The problems the check finds in the policy at `path`, with `setup` run before it and
    `teardown` after, whatever happens."""
    with engine.begin() as conn:
        conn.execute(sa.text(setup))
    try:
        with pytest.raises(PolicyError) as failure:
            check(engine, path)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(teardown))
    return failure.value.problems


HASHED = """
CREATE SCHEMA hashed;
CREATE TABLE hashed.orders AS SELECT * FROM shop.orders WITH NO DATA;
ALTER TABLE hashed.orders ALTER order_id TYPE text, ALTER customer_id TYPE varchar(32);
CREATE TABLE hashed.order_items AS SELECT * FROM shop.order_items WITH NO DATA;
CREATE DOMAIN hashed.line_order AS bigint;
ALTER TABLE hashed.order_items ALTER order_id TYPE hashed.line_order;
"""


def test_ids_that_are_not_integers_are_refused_naming_the_column_and_the_fix(engine, policy_file):
    """A marketplace's hash ids (text) passed the check and failed the night in the purge, with
    a driver error and a statement. A domain over an integer type is an integer."""
    path = policy_file(
        'version: "1"\nraw:\n  orders: {table: hashed.orders}\n'
        "  order_items: {table: hashed.order_items}\n"
    )
    problems = refused(engine, path, HASHED, "DROP SCHEMA hashed CASCADE")
    assert len(problems) == 2
    order_id, customer_id = problems
    assert order_id.startswith(
        "policy.yaml: raw.orders.columns.order_id: column 'order_id' of hashed.orders is text; "
    )
    assert "GENERATED ALWAYS AS IDENTITY" in order_id
    assert customer_id.startswith(
        "policy.yaml: raw.orders.columns.customer_id: column 'customer_id' of hashed.orders is "
        "character varying; "
    )
    assert "dense_rank()" in customer_id


def test_orders_mapped_to_a_view_are_refused_naming_it(engine, policy_file):
    """The change capture's triggers cannot go on a view: the refresh failed with a driver
    error. A catalogue may be a view."""
    path = policy_file(
        'version: "1"\nraw:\n  orders: {table: public.orders_view}\n'
        "  catalogue: {table: public.products_view}\n"
    )
    views = """CREATE VIEW public.orders_view AS SELECT * FROM shop.orders;
               CREATE VIEW public.products_view AS SELECT * FROM shop.products"""
    assert refused(engine, path, views, "DROP VIEW public.orders_view, public.products_view") == [
        "policy.yaml: raw.orders.table: public.orders_view is a view; the sales change capture "
        "needs triggers on the table itself, which a view cannot carry: map the table (a column "
        "in another form than lifecycle reads, such as a status or a time without a zone, can "
        "be a generated column on it: docs/policy.md)"
    ]
