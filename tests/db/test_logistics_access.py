"""Carrier roles on real PostgreSQL: each sees its own deliveries only, and the checks that prove it
fail as soon as a grant, a policy or a column opens more."""

from __future__ import annotations

import os
import threading
import uuid
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from lifecycle.checks import CheckResult
from lifecycle.logistics.access import create_role, ensure_carrier_access
from lifecycle.logistics.checks import (
    check_carrier_isolation,
    check_columns,
    check_finished_orders_gone,
)
from lifecycle.logistics.handoff import refresh_handoff
from lifecycle.policy import load_policy
from tests.carriers import add_pending, carriers_policy, set_order
from tests.conftest import AS_OF
from tests.shop import PERSONAL, add_delivered


@pytest.fixture
def shop(engine, policy_file):
    """Three carriers' pending deliveries, refreshed, with roles and grants in place."""
    policy = carriers_policy(policy_file)
    with engine.begin() as conn:
        add_pending(conn, 1, "sf_express")
        add_pending(conn, 2, "sf_express", status="shipped")
        add_pending(conn, 3, "zto_express")
        add_pending(conn, 4, "jd_logistics")
    ensure_carrier_access(engine, policy)
    refresh_handoff(engine, policy, run_id="night-1")
    return policy


def as_role(engine, role: str, statement: str):
    """Runs `statement` connected as `role` (SET ROLE in a transaction that is rolled back)."""
    with engine.connect() as conn:
        with conn.begin():
            conn.execute(sa.text(f'SET LOCAL ROLE "{role}"'))
            try:
                return conn.execute(sa.text(statement)).all()
            finally:
                conn.rollback()


def found(result: CheckResult, where: str, kind: str, said: str = "") -> bool:
    """Whether the check reports `kind` at `where` (table, table.column or role), its fix saying `said`."""
    return any(f.where == where and f.kind == kind and said in f.detail for f in result.findings)


@contextmanager
def opened(engine, grant: str, undo: str):
    """Applies a grant (or another opening) for the duration of the block."""
    with engine.begin() as conn:
        conn.execute(sa.text(grant))
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(undo))


def test_each_carrier_role_sees_only_its_own_deliveries(engine, shop):
    sf = as_role(
        engine,
        "lifecycle_carrier_sf_express",
        "SELECT order_id, carrier FROM logistics.handoff ORDER BY 1",
    )
    zto = as_role(
        engine,
        "lifecycle_carrier_zto_express",
        "SELECT order_id, carrier FROM logistics.handoff ORDER BY 1",
    )
    assert sf == [(1, "sf_express"), (2, "sf_express")]
    assert zto == [(3, "zto_express")]


def test_a_carriers_own_login_made_a_member_of_its_role_sees_its_rows(engine, shop):
    login = f"sf_reader_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{login}" LOGIN IN ROLE lifecycle_carrier_sf_express'))
    try:
        assert as_role(engine, login, "SELECT order_id FROM logistics.handoff ORDER BY 1") == [
            (1,),
            (2,),
        ]
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP ROLE "{login}"'))


def test_a_carrier_role_reads_the_delivery_fields_and_cannot_read_the_shop(engine, shop):
    [row] = as_role(
        engine,
        "lifecycle_carrier_zto_express",
        "SELECT order_id, carrier, receiver_name, receiver_address, receiver_postcode, receiver_phone, "
        "ship_region FROM logistics.handoff",
    )
    assert row == (
        3,
        "zto_express",
        PERSONAL["receiver_name"],
        PERSONAL["receiver_address"],
        PERSONAL["receiver_postcode"],
        PERSONAL["receiver_phone"],
        "SH",
    )
    for table in (
        "shop.orders",
        "shop.order_items",
        "lifecycle.purge_ledger",
        "lifecycle.handoff_refreshes",
    ):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            as_role(engine, "lifecycle_carrier_zto_express", f"SELECT 1 FROM {table} LIMIT 0")


def test_a_field_the_policy_leaves_out_cannot_be_read_by_carriers(engine, policy_file):
    policy = carriers_policy(policy_file, fields="receiver_address, receiver_postcode")
    ensure_carrier_access(engine, policy)
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        as_role(
            engine, "lifecycle_carrier_sf_express", "SELECT receiver_phone FROM logistics.handoff"
        )
    assert (
        as_role(
            engine, "lifecycle_carrier_sf_express", "SELECT receiver_address FROM logistics.handoff"
        )
        == []
    )


def test_a_delivered_order_disappears_from_its_carriers_view_at_the_next_refresh(engine, shop):
    with engine.begin() as conn:
        set_order(conn, 2, status="delivered", delivered_at=AS_OF)
    refresh_handoff(engine, shop, run_id="night-2")
    assert as_role(
        engine, "lifecycle_carrier_sf_express", "SELECT order_id FROM logistics.handoff"
    ) == [(1,)]


def test_the_isolation_check_passes_and_counts_what_each_role_sees(engine, shop):
    outcome = check_carrier_isolation(engine, shop)
    assert outcome.passed, outcome.description()
    roles = outcome.figures["roles"]
    assert set(roles) == {"lifecycle_carrier_sf_express", "lifecycle_carrier_zto_express"}
    # Own rows include the check's probe row, so the proof holds for a carrier with no orders too.
    assert roles["lifecycle_carrier_sf_express"]["own_rows_seen"] == 3
    assert roles["lifecycle_carrier_zto_express"]["other_carriers_rows_seen"] == 0
    with engine.connect() as conn:  # the probe rows were rolled back
        assert conn.execute(sa.text("SELECT count(*) FROM logistics.handoff")).scalar() == 4


@pytest.mark.parametrize(
    "grant, undo, where, kind, said",
    [
        (
            "GRANT USAGE ON SCHEMA shop TO lifecycle_carrier_zto_express; "
            "GRANT SELECT ON shop.orders TO lifecycle_carrier_zto_express",
            "REVOKE ALL ON shop.orders FROM lifecycle_carrier_zto_express; "
            "REVOKE ALL ON SCHEMA shop FROM lifecycle_carrier_zto_express",
            "shop.orders",
            "relation_readable",
            "lifecycle_carrier_zto_express can read it",
        ),
        (
            "GRANT USAGE ON SCHEMA shop TO PUBLIC; GRANT SELECT ON shop.order_items TO PUBLIC",
            "REVOKE ALL ON shop.order_items FROM PUBLIC; REVOKE ALL ON SCHEMA shop FROM PUBLIC",
            "shop.order_items",
            "relation_readable",
            "can read it",
        ),
        (
            "CREATE POLICY everyone ON logistics.handoff FOR SELECT USING (true)",
            "DROP POLICY everyone ON logistics.handoff",
            "logistics.handoff.carrier",
            "other_carriers_rows_visible",
            "lifecycle_carrier_sf_express sees 5 rows of other carriers",
        ),
        (
            "ALTER TABLE logistics.handoff DISABLE ROW LEVEL SECURITY",
            "ALTER TABLE logistics.handoff ENABLE ROW LEVEL SECURITY",
            "logistics.handoff.carrier",
            "other_carriers_rows_visible",
            "rows of other carriers",
        ),
        (
            "GRANT DELETE ON logistics.handoff TO lifecycle_carrier_zto_express",
            "REVOKE DELETE ON logistics.handoff FROM lifecycle_carrier_zto_express",
            "logistics.handoff",
            "write_allowed",
            "lifecycle_carrier_zto_express may DELETE on logistics.handoff",
        ),
        (
            "CREATE VIEW logistics.everything AS SELECT * FROM shop.orders; "
            "GRANT SELECT ON logistics.everything TO lifecycle_carrier_sf_express",
            "DROP VIEW logistics.everything",
            "logistics.everything",
            "relation_readable",
            "lifecycle_carrier_sf_express can read it",
        ),
    ],
)
def test_the_isolation_check_fails_once_a_grant_opens_more(
    engine, shop, grant, undo, where, kind, said
):
    assert check_carrier_isolation(engine, shop).passed
    with opened(engine, grant, undo):
        outcome = check_carrier_isolation(engine, shop)
    assert not outcome.passed
    assert found(outcome, where, kind, said), outcome.description()
    assert check_carrier_isolation(engine, shop).passed


def test_the_isolation_check_fails_when_a_role_reads_a_field_the_policy_left_out(
    engine, shop, policy_file
):
    narrow = carriers_policy(policy_file, fields="receiver_address", name="narrow.yaml")
    outcome = check_carrier_isolation(engine, narrow)  # grants still give every field
    assert not outcome.passed
    assert found(
        outcome,
        "logistics.handoff.receiver_phone",
        "column_readable",
        "lifecycle_carrier_sf_express reads it",
    )
    ensure_carrier_access(engine, narrow)
    assert check_carrier_isolation(engine, narrow).passed


def test_the_isolation_check_fails_when_a_carrier_role_is_missing_its_grants(engine, shop):
    with opened(
        engine,
        "REVOKE ALL ON SCHEMA logistics FROM lifecycle_carrier_zto_express",
        "GRANT USAGE ON SCHEMA logistics TO lifecycle_carrier_zto_express",
    ):
        outcome = check_carrier_isolation(engine, shop)
    assert not outcome.passed
    assert found(
        outcome,
        "logistics.handoff",
        "own_rows_hidden",
        "lifecycle_carrier_zto_express sees 0 of its 2 rows",
    )


def test_a_carrier_dropped_from_the_policy_loses_its_access(engine, shop, policy_file):
    only_sf = policy_file(
        'version: "2"\nlogistics:\n  carriers: {sf_express: {role: true}}\n', "only_sf.yaml"
    )
    report = ensure_carrier_access(engine, load_policy(only_sf))
    assert report.revoked == ["lifecycle_carrier_zto_express"]
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        as_role(engine, "lifecycle_carrier_zto_express", "SELECT order_id FROM logistics.handoff")
    with engine.connect() as conn:
        policies = (
            conn.execute(sa.text("SELECT policyname FROM pg_policies WHERE tablename = 'handoff'"))
            .scalars()
            .all()
        )
    assert policies == ["carrier_sf_express"]


def test_giving_access_again_changes_nothing(engine, shop):
    policies = "SELECT polname, oid FROM pg_policy ORDER BY 1"
    with engine.connect() as conn:
        before = conn.execute(sa.text(policies)).all()
    again = ensure_carrier_access(engine, shop)
    with engine.connect() as conn:
        after = conn.execute(sa.text(policies)).all()
    assert (again.created, again.regranted, again.revoked) == ([], [], [])
    assert after == before  # no row policy was dropped and made again
    assert check_carrier_isolation(engine, shop).passed


def test_the_next_run_takes_back_a_grant_wider_than_the_policy(engine, shop):
    with engine.begin() as conn:
        conn.execute(
            sa.text("GRANT SELECT, UPDATE ON logistics.handoff TO lifecycle_carrier_zto_express")
        )
    report = ensure_carrier_access(engine, shop)
    assert report.regranted == ["lifecycle_carrier_zto_express"]
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        as_role(
            engine,
            "lifecycle_carrier_zto_express",
            "UPDATE logistics.handoff SET carrier = carrier",
        )


def test_carrier_roles_can_be_created_by_many_sessions_at_once(engine):
    role = f"lifecycle_carrier_race_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    errors, created = [], []

    def create():
        try:
            created.append(create_role(engine, role))
        except Exception as exc:  # collected: a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and any(created)
        assert create_role(engine, role) is False
        with engine.connect() as conn:
            assert (
                conn.execute(
                    sa.text("SELECT count(*) FROM pg_roles WHERE rolname = :r"), {"r": role}
                ).scalar()
                == 1
            )
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))


def test_access_can_be_given_by_concurrent_runs(engine, shop):
    errors = []

    def give():
        try:
            ensure_carrier_access(engine, shop)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=give) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert check_carrier_isolation(engine, shop).passed


def test_the_columns_check_fails_on_a_column_outside_the_allow_list(engine, shop):
    assert check_columns(engine, shop).passed
    with opened(
        engine,
        "ALTER TABLE logistics.handoff ADD COLUMN receiver_email text",
        "ALTER TABLE logistics.handoff DROP COLUMN receiver_email",
    ):
        outcome = check_columns(engine, shop)
    assert not outcome.passed and outcome.figures["unexpected_columns"] == ["receiver_email"]
    assert found(
        outcome,
        "logistics.handoff.receiver_email",
        "column_not_on_allow_list",
        "ALTER TABLE logistics.handoff DROP COLUMN receiver_email",
    )


def test_the_columns_check_fails_while_a_left_out_field_still_holds_values(
    engine, shop, policy_file
):
    narrow = carriers_policy(policy_file, fields="receiver_address", name="narrow.yaml")
    outcome = check_columns(engine, narrow)
    assert (
        not outcome.passed
        and outcome.figures["left_out_fields_holding_values"]["receiver_phone"] == 4
    )
    assert found(
        outcome,
        "logistics.handoff.receiver_phone",
        "left_out_field_holds_values",
        "run the refresh",
    )
    refresh_handoff(engine, narrow, run_id="narrowed")
    assert check_columns(engine, narrow).passed


def test_the_finished_orders_check_fails_on_a_row_the_refresh_should_have_removed(engine, shop):
    with engine.begin() as conn:
        add_delivered(conn, 9, AS_OF, carrier="sf_express")
    refresh_handoff(engine, shop, run_id="night-2")
    with engine.begin() as conn:  # something copies a delivered order back in after the refresh
        conn.execute(
            sa.text("INSERT INTO logistics.handoff (order_id, carrier) VALUES (9, 'sf_express')")
        )
    outcome = check_finished_orders_gone(engine, shop)
    assert not outcome.passed
    assert outcome.figures["finished_by_reason"] == {"delivered": 1}
    assert outcome.figures["finished_sample_order_ids"] == [9]
    [finding] = outcome.findings
    assert (finding.kind, finding.count, finding.samples) == ("delivered", 1, ("9",))


def test_an_order_finished_after_the_refresh_began_does_not_fail_the_check(engine, shop):
    with engine.begin() as conn:
        set_order(conn, 1, status="delivered", delivered_at=AS_OF)
    outcome = check_finished_orders_gone(engine, shop)
    assert outcome.passed and outcome.figures["changed_since_refresh"] == 1
    refresh_handoff(engine, shop, run_id="night-2")
    outcome = check_finished_orders_gone(engine, shop)
    assert outcome.passed and outcome.figures["changed_since_refresh"] == 0


def test_a_delivery_committed_while_the_refresh_ran_waits_for_the_next_one(engine, shop):
    shopkeeper = engine.connect()
    try:  # the shop marks order 3 delivered in a transaction still open when the refresh begins
        shopkeeper.begin()
        set_order(shopkeeper, 3, status="delivered", delivered_at=AS_OF)
        with (
            engine.begin() as conn
        ):  # and meanwhile commits a newer change, so 3's is "in progress"
            add_pending(conn, 5, "zto_express")
        refresh_handoff(engine, shop, run_id="night-2")
        shopkeeper.commit()
    finally:
        shopkeeper.close()
    outcome = check_finished_orders_gone(engine, shop)
    assert outcome.passed and outcome.figures["changed_since_refresh"] == 1


def test_the_finished_orders_check_is_strict_before_any_refresh(engine, policy_file):
    policy = carriers_policy(policy_file)
    with engine.begin() as conn:
        add_delivered(conn, 9, AS_OF, carrier="sf_express")
        conn.execute(
            sa.text("INSERT INTO logistics.handoff (order_id, carrier) VALUES (9, 'sf_express')")
        )
    outcome = check_finished_orders_gone(engine, policy)
    assert not outcome.passed and outcome.figures["finished_rows"] == 1
