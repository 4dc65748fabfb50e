"""The carrier hand-off on real PostgreSQL: what is selected, what leaves, and that a refresh repeats cleanly."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from lifecycle.ledger.chain import verify
from lifecycle.logistics.handoff import LogisticsError, refresh_handoff
from lifecycle.policy import PolicyError, check_policy_against_database, load_policy
from lifecycle.retention import erasure, purge
from tests.carriers import NEVER_SHARED, add_pending, carriers_policy, handoff, set_order
from tests.conftest import AS_OF
from tests.db.test_erasure import relation_bytes, settle
from tests.shop import PERSONAL, add_delivered, add_order


def refresh(engine, policy, run_id="refresh-1"):
    return refresh_handoff(engine, policy, run_id=run_id)


def test_only_paid_and_shipped_orders_with_a_policy_carrier_are_handed_off(engine, policy_file):
    policy = carriers_policy(policy_file)
    with engine.begin() as conn:
        add_pending(conn, 1, "sf_express")
        add_pending(conn, 2, "zto_express", status="shipped")
        add_pending(conn, 3, "jd_logistics")
        add_pending(conn, 4, None)  # not matched with a carrier yet
        add_pending(conn, 5, "dhl")  # a carrier the policy does not list
        add_pending(conn, 6, "sf_express", purged_at=AS_OF)  # purged (e.g. on request)
        add_order(conn, 7, "placed", AS_OF, carrier="sf_express")  # not paid
        add_delivered(conn, 8, AS_OF, carrier="sf_express")
        add_order(conn, 9, "cancelled", AS_OF, cancelled_at=AS_OF, carrier="sf_express")
    report = refresh(engine, policy)
    with engine.connect() as conn:
        rows = handoff(conn)
    assert sorted(rows) == [1, 2, 3]
    assert {oid: row["carrier"] for oid, row in rows.items()} == {
        1: "sf_express",
        2: "zto_express",
        3: "jd_logistics",
    }
    assert report.inserted == 3 and report.rows_by_carrier == {
        "sf_express": 1,
        "zto_express": 1,
        "jd_logistics": 1,
    }
    assert (report.awaiting_carrier, report.unmatched_carrier, report.unmatched_sample_ids) == (
        1,
        1,
        [5],
    )


def test_a_row_holds_the_delivery_fields_and_nothing_else(engine, policy_file):
    policy = carriers_policy(policy_file)
    with engine.begin() as conn:
        add_pending(conn, 1, "sf_express")
    refresh(engine, policy)
    with engine.connect() as conn:
        [row] = handoff(conn).values()
    assert row == {
        "order_id": 1,
        "carrier": "sf_express",
        "receiver_name": PERSONAL["receiver_name"],
        "receiver_address": PERSONAL["receiver_address"],
        "receiver_postcode": PERSONAL["receiver_postcode"],
        "receiver_phone": PERSONAL["receiver_phone"],
        "ship_region": "SH",
    }
    assert not set(NEVER_SHARED) & {str(v) for v in row.values()}


def test_fields_the_policy_leaves_out_stay_empty(engine, policy_file):
    policy = carriers_policy(policy_file, fields="receiver_address, receiver_postcode")
    with engine.begin() as conn:
        add_pending(conn, 1, "sf_express")
    refresh(engine, policy)
    with engine.connect() as conn:
        [row] = handoff(conn).values()
    assert (row["receiver_address"], row["receiver_postcode"]) == (
        PERSONAL["receiver_address"],
        PERSONAL["receiver_postcode"],
    )
    assert (row["receiver_name"], row["receiver_phone"], row["ship_region"]) == (None, None, None)


@pytest.mark.parametrize(
    "change, reason",
    [
        (dict(status="delivered", delivered_at=AS_OF), "delivered"),
        (dict(status="cancelled", cancelled_at=AS_OF), "cancelled"),
        (
            dict(
                purged_at=AS_OF,
                receiver_name=None,
                receiver_phone=None,
                receiver_address=None,
                receiver_postcode=None,
                receiver_email=None,
                payment_ref=None,
            ),
            "purged",
        ),
        (dict(carrier=None), "carrier_unmatched"),
        (dict(carrier="dhl"), "carrier_unmatched"),
    ],
)
def test_a_row_leaves_at_the_next_refresh_once_its_order_no_longer_awaits_that_carrier(
    engine, policy_file, change, reason
):
    policy = carriers_policy(policy_file)
    with engine.begin() as conn:
        add_pending(conn, 1, "sf_express", status="shipped")
        add_pending(conn, 2, "sf_express", status="shipped")
    refresh(engine, policy, "night-1")
    with engine.begin() as conn:
        set_order(conn, 1, **change)
    report = refresh(engine, policy, "night-2")
    with engine.connect() as conn:
        assert sorted(handoff(conn)) == [2]
    assert report.removed == {reason: 1} and report.removed_sample_ids == [1]


def test_a_row_whose_order_disappeared_is_removed(engine, policy_file):
    policy = carriers_policy(policy_file)
    with engine.begin() as conn:
        add_pending(conn, 1, "sf_express")
    refresh(engine, policy, "night-1")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "DELETE FROM shop.order_items WHERE order_id = 1; DELETE FROM shop.orders WHERE order_id = 1"
            )
        )
    report = refresh(engine, policy, "night-2")
    with engine.connect() as conn:
        assert handoff(conn) == {}
    assert report.removed == {"order_gone": 1}


def test_removals_are_logged_per_carrier_and_reason_with_ids_only_and_chained(engine, policy_file):
    policy = carriers_policy(policy_file)
    with engine.begin() as conn:
        for order_id, carrier in [
            (1, "sf_express"),
            (2, "sf_express"),
            (3, "zto_express"),
            (4, "sf_express"),
        ]:
            add_pending(conn, order_id, carrier, status="shipped")
    refresh(engine, policy, "night-1")
    with engine.begin() as conn:
        set_order(conn, 1, status="delivered", delivered_at=AS_OF)
        set_order(conn, 2, status="delivered", delivered_at=AS_OF)
        set_order(conn, 3, status="cancelled", cancelled_at=AS_OF)
    refresh(engine, policy, "night-2")
    with engine.connect() as conn:
        log = conn.execute(
            sa.text("""SELECT run_id, carrier, reason, removed, order_ids
                       FROM lifecycle.handoff_removals ORDER BY removal_id""")
        ).all()
    assert sorted(map(tuple, log)) == [
        ("night-2", "sf_express", "delivered", 2, [1, 2]),
        ("night-2", "zto_express", "cancelled", 1, [3]),
    ]
    result = verify(engine)
    assert result.intact, result.summary()
    assert {r.chain: r.rows for r in result.ranges}["handoff_removals"] == 2


def test_a_changed_address_or_carrier_is_updated_in_place(engine, policy_file):
    policy = carriers_policy(policy_file)
    with engine.begin() as conn:
        add_pending(conn, 1, "sf_express")
        add_pending(conn, 2, "sf_express")
    refresh(engine, policy, "night-1")
    with engine.begin() as conn:
        set_order(conn, 1, receiver_address="8 River Street")
        set_order(conn, 2, carrier="zto_express")
    report = refresh(engine, policy, "night-2")
    with engine.connect() as conn:
        rows = handoff(conn)
    assert rows[1]["receiver_address"] == "8 River Street" and rows[2]["carrier"] == "zto_express"
    assert (report.inserted, report.updated, report.removed_total) == (0, 2, 0)


def test_a_repeated_refresh_changes_nothing(engine, policy_file):
    policy = carriers_policy(policy_file)
    with engine.begin() as conn:
        for oid in range(1, 6):
            add_pending(conn, oid, "sf_express")
    refresh(engine, policy, "night-1")
    xmins = "SELECT order_id, CAST(xmin AS text) FROM logistics.handoff ORDER BY order_id"
    with engine.connect() as conn:
        before = conn.execute(sa.text(xmins)).all()
    again = refresh(engine, policy, "night-2")
    with engine.connect() as conn:
        after = conn.execute(sa.text(xmins)).all()
    assert (again.inserted, again.updated, again.removed_total) == (0, 0, 0)
    assert after == before  # no row version was rewritten


def test_small_batches_give_the_same_hand_off_as_one_batch(engine, policy_file):
    with engine.begin() as conn:
        for oid in (3, 10, 11, 12, 40, 41, 99):
            add_pending(conn, oid, "sf_express" if oid % 2 else "zto_express")
    small = refresh(engine, carriers_policy(policy_file, batch_size=2, name="small.yaml"), "small")
    with engine.connect() as conn:
        by_small = handoff(conn)
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE logistics.handoff"))
    refresh(engine, carriers_policy(policy_file), "one")
    with engine.connect() as conn:
        assert handoff(conn) == by_small
    assert small.batches == 4 and small.inserted == 7


def test_small_batches_cut_at_orders_in_flight_still_remove_the_rows_of_cleared_orders(
    engine, policy_file
):
    """The walk's bounds are orders not cleared yet; cleared orders between two bounds, before the
    first and after the last are never read as orders, yet their hand-off rows still leave."""
    policy = carriers_policy(policy_file, batch_size=2, name="small.yaml")
    ids = (1, 5, 6, 7, 20, 21, 22, 50, 51)
    with engine.begin() as conn:
        for oid in ids:
            add_pending(conn, oid, "sf_express", status="shipped")
    refresh(engine, policy, "night-1")
    cleared = (1, 6, 7, 21, 51)  # the first, two inside a batch, one between batches, the last
    with engine.begin() as conn:
        for oid in cleared:
            set_order(conn, oid, purged_at=AS_OF)
    report = refresh(engine, policy, "night-2")
    with engine.connect() as conn:
        assert sorted(handoff(conn)) == [oid for oid in ids if oid not in cleared]
    assert report.removed == {"purged": len(cleared)} and report.removed_sample_ids == list(cleared)
    assert report.batches == 3  # bounds at the 2nd and 4th of the 4 orders in flight, then the rest


def test_each_refresh_is_recorded_with_its_counts(engine, policy_file):
    policy = carriers_policy(policy_file)
    with engine.begin() as conn:
        add_pending(conn, 1, "sf_express")
    refresh(engine, policy, "night-1")
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT status, inserted, handoff_rows, policy_version, finished_at "
                "FROM lifecycle.handoff_refreshes WHERE run_id = 'night-1'"
            )
        ).one()
    assert row[:4] == ("succeeded", 1, 1, "carriers-1")
    assert row.finished_at <= datetime.now(UTC)


def test_a_policy_naming_a_missing_field_column_fails_before_anything_changes(engine, policy_file):
    with engine.begin() as conn:
        add_pending(conn, 1, "sf_express")
        conn.execute(sa.text("ALTER TABLE shop.orders RENAME COLUMN receiver_phone TO mobile"))
    try:
        with pytest.raises(PolicyError) as failure:
            refresh(engine, carriers_policy(policy_file))
        assert (
            "policy.yaml: logistics.fields: column 'receiver_phone' not in shop.orders; "
            "remove 'receiver_phone' from logistics.fields or add the column"
        ) in str(failure.value)
        with engine.connect() as conn:
            assert handoff(conn) == {}
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE shop.orders RENAME COLUMN mobile TO receiver_phone"))


MAPPED = """
CREATE SCHEMA legacy_lx;
CREATE TABLE legacy_lx.purchase (id bigint PRIMARY KEY, state text NOT NULL, courier text,
    province text, receiver_name text, receiver_address text, receiver_postcode text,
    receiver_phone text, receiver_email text, cleared timestamptz);
INSERT INTO legacy_lx.purchase VALUES
    (1, 'shipped', 'sf_express', 'ZJ', 'Li Lei', '1 Lake Road', '310000', '13800138000', 'li@example.com', NULL),
    (2, 'delivered', 'sf_express', 'ZJ', 'Han Meimei', '2 Hill Road', '310001', '13900139000', 'han@example.com', NULL);
"""


def test_a_shop_with_other_column_names_hands_off_through_its_mapping(engine, policy_file):
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS legacy_lx CASCADE"))
        conn.execute(sa.text(MAPPED))
    try:
        policy = load_policy(
            policy_file(
                'version: "lx"\nraw:\n  orders:\n    table: legacy_lx.purchase\n'
                "    columns: {order_id: id, status: state, carrier: courier, ship_region: province, purged_at: cleared}\n"
                "logistics:\n  carriers: {sf_express: {role: true}}\n"
            )
        )
        refresh(engine, policy)
        with engine.connect() as conn:
            rows = handoff(conn)
        assert list(rows) == [1]
        assert (rows[1]["carrier"], rows[1]["ship_region"], rows[1]["receiver_phone"]) == (
            "sf_express",
            "ZJ",
            "13800138000",
        )
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA legacy_lx CASCADE"))


def test_the_carrier_column_is_required_only_once_the_policy_names_carriers(engine, policy_file):
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE shop.orders RENAME COLUMN carrier TO courier"))
    try:
        with engine.connect() as conn:
            check_policy_against_database(
                load_policy(policy_file('version: "1"\n', "none.yaml")), conn
            )
            with pytest.raises(PolicyError) as failure:
                check_policy_against_database(carriers_policy(policy_file), conn)
        assert (
            "policy.yaml: raw.orders.columns: column 'carrier' not in shop.orders (did you mean 'courier'?)"
            in str(failure.value)
        )
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE shop.orders RENAME COLUMN courier TO carrier"))


def test_concurrent_refreshes_end_with_the_same_hand_off(engine, policy_file):
    policy = carriers_policy(policy_file, batch_size=3)
    with engine.begin() as conn:
        for oid in range(1, 31):
            add_pending(conn, oid, "sf_express" if oid % 3 else None)
    errors = []

    def run(run_id):
        try:
            refresh(engine, policy, run_id)
        except Exception as exc:  # collected: a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"night-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with engine.connect() as conn:
        assert sorted(handoff(conn)) == [oid for oid in range(1, 31) if oid % 3]


def test_a_removed_row_leaves_the_hand_off_files_with_the_nights_erasure(engine, policy_file):
    policy = carriers_policy(policy_file)
    marker = "ZQHANDOFF0001XJ"
    with engine.begin() as conn:
        add_pending(conn, 1, "sf_express", status="shipped", receiver_name=marker)
        add_delivered(
            conn, 2, AS_OF - timedelta(days=100)
        )  # due tonight, so tonight's erasure runs
    refresh(engine, policy, "night-1")
    assert marker.encode() in relation_bytes(
        engine, "logistics.handoff"
    )  # the probe reads the files
    with engine.begin() as conn:
        set_order(conn, 1, status="delivered", delivered_at=AS_OF)
    purge.run_purge(engine, policy, run_id="night-2", as_of=AS_OF)
    refresh(engine, policy, "night-2")
    assert marker.encode() in relation_bytes(
        engine, "logistics.handoff"
    )  # deleted, still in the pages
    settle(engine, policy)  # another session of the shared server may be writing meanwhile
    report = erasure.erase_purged_storage(engine, policy, run_id="night-2")
    assert report.ran and "logistics.handoff" in report.tables
    deadline = time.monotonic() + 30
    while (
        marker.encode() in relation_bytes(engine, "logistics.handoff")
        and time.monotonic() < deadline
    ):
        # VACUUM FULL keeps a deleted version while any snapshot might still see it; on the shared
        # test servers other runs' transactions hold one for seconds, and a later rewrite drops it.
        time.sleep(0.5)
        erasure.erase_purged_storage(engine, policy, run_id="night-2-again", force=True)
    assert marker.encode() not in relation_bytes(engine, "logistics.handoff")


def test_a_failed_batch_rolls_back_alone_names_ids_only_and_the_next_refresh_finishes(
    engine, policy_file
):
    policy = carriers_policy(policy_file, batch_size=2)
    with engine.begin() as conn:
        for oid in range(1, 7):
            add_pending(conn, oid, "sf_express")
        conn.execute(
            sa.text(
                "ALTER TABLE logistics.handoff ADD CONSTRAINT refuse_five CHECK (order_id <> 5)"
            )
        )
    try:
        with pytest.raises(LogisticsError) as failure:
            refresh(engine, policy, "night-1")
        message = str(failure.value)
        assert "order_id in (4, 6] rolled back" in message
        assert not any(
            value in message for value in PERSONAL.values()
        )  # the row's DETAIL is not kept
        with engine.connect() as conn:
            assert sorted(handoff(conn)) == [
                1,
                2,
                3,
                4,
            ]  # earlier batches kept, the failed one whole
            assert (
                conn.execute(sa.text("SELECT status FROM lifecycle.handoff_refreshes")).scalar()
                == "failed"
            )
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE logistics.handoff DROP CONSTRAINT refuse_five"))
    report = refresh(engine, policy, "night-2")
    with engine.connect() as conn:
        assert sorted(handoff(conn)) == [1, 2, 3, 4, 5, 6]
    assert report.inserted == 2
