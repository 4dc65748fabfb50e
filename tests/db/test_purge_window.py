"""The purge and the overdue check find the orders whose own window may have closed through
shop.orders_window_opened_idx (migration 0190): a night reads the orders that became due and
those a case keeps, not every order in flight."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from lifecycle.retention import purge, standing
from lifecycle.retention.rules import Cutoffs, RetentionSql
from tests.conftest import AS_OF
from tests.db.test_purge_cleared import _index_names
from tests.shop import PERSONAL, add_delivered

DAY = timedelta(days=1)
IN_FLIGHT = 20_000  # delivered in the last 20 days: within their window
DUE = 12  # delivered 40 days ago

_SEED = """
    INSERT INTO shop.orders (order_id, customer_id, status, placed_at, paid_at, shipped_at,
                             delivered_at, ship_region, receiver_name, receiver_phone,
                             receiver_email, receiver_address, receiver_postcode, payment_ref)
    SELECT i, i, 'delivered', d - interval '3 days', d - interval '3 days', d - interval '2 days',
           d, 'SH', :receiver_name, :receiver_phone, :receiver_email, :receiver_address,
           :receiver_postcode, :payment_ref
    FROM generate_series(1, :n) i,
         LATERAL (SELECT CAST(:as_of AS timestamptz) - (i % 20) * interval '1 day'
                         - interval '1 hour' AS d) t
"""


def _seed(engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(_SEED), {**PERSONAL, "n": IN_FLIGHT, "as_of": AS_OF})
        for order_id in range(IN_FLIGHT + 1, IN_FLIGHT + DUE + 1):
            add_delivered(conn, order_id, AS_OF - 40 * DAY)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE shop.orders"))


def _plan(conn, sql: str, params: dict) -> str:
    return "\n".join(conn.execute(sa.text("EXPLAIN " + sql), params).scalars())


def test_the_purge_and_the_overdue_check_read_the_window_index_not_the_orders_in_flight(
    engine, policy
):
    _seed(engine)
    q = RetentionSql(policy)
    params = {
        **Cutoffs.at(AS_OF, policy).params(),
        "after": -(2**63),
        "upto": 2**63 - 1,
        "skip": policy.retention.batch_size - 1,
        "run_id": "r",
        "policy_version": "v",
        "policy_hash": "h",
    }
    with engine.connect() as conn:
        names = _index_names(conn, "shop.orders_window_opened_idx")
        in_flight = _index_names(conn, "shop.orders_not_purged_idx")
        plans = {
            "batch": _plan(conn, purge._purge_batch_sql(q), params).split("CTE recleared")[0],
            "bound": _plan(conn, purge._batch_bounds_sql(q), params),
            "overdue": _plan(conn, standing._overdue_sql(q), params),
        }
    for what, plan in plans.items():
        assert any(name in plan for name in names), f"{what}:\n{plan}"
        assert not any(f" {name} " in plan for name in in_flight), f"{what}:\n{plan}"

    assert standing.count_overdue(engine, policy, AS_OF) == DUE
    report = purge.run_purge(engine, policy, run_id="night", as_of=AS_OF)
    assert report.purged == DUE and report.batches == 1
    assert standing.count_overdue(engine, policy, AS_OF) == 0
    # eleven days on, the orders delivered 19 days before AS_OF (and an hour) are due, only they
    later = AS_OF + 11 * DAY
    assert standing.count_overdue(engine, policy, later) == IN_FLIGHT // 20
    assert purge.run_purge(engine, policy, run_id="later", as_of=later).purged == IN_FLIGHT // 20
