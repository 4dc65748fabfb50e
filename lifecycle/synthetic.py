"""A deterministic synthetic shop for the demo and the benchmarks.

Faker (fixed seed) fills small pools of names, addresses and emails; PostgreSQL combines them
with md5-derived pseudo-random numbers in one INSERT … SELECT per table, so a million orders
take seconds and the same seed gives the same shop on every server and version.

The mix covers every rule: delivered orders across 400 days (most past their window), recent
deliveries, cancellations, abandoned carts, paid and shipped orders (some stale), open and
recently closed after-sales cases, and a few rows that cannot be judged (anomalies).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from faker import Faker
from sqlalchemy.engine import Engine

POOL = 1000
REGIONS = [
    "GD",
    "ZJ",
    "JS",
    "SH",
    "BJ",
    "SD",
    "SC",
    "HB",
    "FJ",
    "HN",
    "AH",
    "HE",
    "SN",
    "CQ",
    "LN",
    "TJ",
    "YN",
    "GX",
    "JX",
    "SX",
    "HL",
    "JL",
    "GZ",
    "NM",
    "XJ",
    "GS",
    "HI",
    "NX",
    "QH",
    "XZ",
]
SKUS = 200

_SEEDED = sa.text("SELECT count(*) FROM lifecycle.demo_seeds")
_ORDERS = sa.text("SELECT EXISTS (SELECT 1 FROM shop.orders)")

# 28-bit pseudo-random numbers from one md5: h(m, k) is the k-th 7-hex-digit slice.
_H = "('x' || substr({m}, {start}, 7))::bit(28)::int"


def _h(m: str, k: int) -> str:
    return _H.format(m=m, start=1 + 7 * k)


_ORDERS_SQL = f"""
WITH base AS (
    SELECT g AS order_id, {_h("m1", 0)} % 10000 AS bucket, {_h("m1", 1)} AS h2, {_h("m1", 2)} AS h3,
           {_h("m1", 3)} AS h4, {_h("m2", 0)} AS h5, {_h("m2", 1)} AS h6, m2
    FROM generate_series(1, :n) g,
         LATERAL (SELECT md5(:seed || ':a:' || g) AS m1, md5(:seed || ':b:' || g) AS m2) m
), timed AS (
    SELECT b.*,
        CASE
            WHEN bucket < 7500 THEN :as_of - make_interval(secs => h2 % (400 * 86400))
            WHEN bucket < 9500 THEN :as_of - interval '2 days' - make_interval(secs => h2 % (68 * 86400))
            ELSE :as_of - make_interval(secs => 3600 + h2 % (29 * 86400))
        END AS event_at,
        make_interval(secs => 86400 + h4 % (4 * 86400)) AS lead
    FROM base b
)
INSERT INTO shop.orders (order_id, customer_id, status, placed_at, paid_at, shipped_at, delivered_at,
    cancelled_at, ship_region, receiver_name, receiver_phone, receiver_email, receiver_address,
    receiver_postcode, payment_ref)
SELECT order_id,
    1 + h3 % :customers,
    CASE WHEN bucket < 6000 THEN 'delivered' WHEN bucket < 7000 THEN 'cancelled'
         WHEN bucket < 7500 THEN 'placed' WHEN bucket < 8500 THEN 'paid'
         WHEN bucket < 9500 THEN 'shipped' WHEN bucket < 9990 THEN 'delivered' ELSE 'cancelled' END,
    CASE WHEN bucket < 6000 OR bucket >= 9500 THEN event_at - lead
         WHEN bucket < 7000 THEN event_at - interval '2 hours'
         ELSE event_at END,
    CASE WHEN bucket < 6000 OR bucket >= 9500 THEN event_at - lead + interval '10 minutes'
         WHEN bucket >= 7500 THEN event_at + interval '10 minutes' END,
    CASE WHEN bucket < 6000 OR bucket >= 9500 AND bucket < 9990 THEN event_at - lead + interval '1 day'
         WHEN bucket >= 8500 AND bucket < 9500 THEN event_at + interval '1 day' END,
    CASE WHEN bucket < 6000 OR bucket >= 9500 AND bucket < 9960 THEN event_at
         WHEN bucket >= 9970 AND bucket < 9980 THEN :as_of + interval '2 days'
         WHEN bucket >= 9980 AND bucket < 9990 THEN event_at - lead - interval '1 day' END,
    CASE WHEN bucket >= 6000 AND bucket < 7000 THEN event_at END,
    (SELECT v FROM pool_regions WHERE i = (h5 % 1000) * (h5 % 1000) % {len(REGIONS)}),
    (SELECT v FROM pool_names WHERE i = h5 % {POOL}),
    CASE h6 % 3
        WHEN 0 THEN '+86 1' || (3 + h6 % 7) || lpad((h3 % 10)::text, 1, '0') || ' ' || lpad((h4 % 10000)::text, 4, '0') || ' ' || lpad((h2 % 10000)::text, 4, '0')
        WHEN 1 THEN '1' || (3 + h6 % 7) || (h3 % 10) || '-' || lpad((h4 % 10000)::text, 4, '0') || '-' || lpad((h2 % 10000)::text, 4, '0')
        ELSE '(' || (200 + h4 % 800) || ') 555-' || lpad((h2 % 10000)::text, 4, '0') END,
    (SELECT v FROM pool_emails WHERE i = h6 % {POOL}),
    (SELECT v FROM pool_addresses WHERE i = h3 % {POOL}),
    lpad((100000 + h4 % 800000)::text, 6, '0'),
    'PAY-' || upper(substr(m2, 20, 12))
FROM timed
"""

_ITEMS_SQL = f"""
INSERT INTO shop.order_items (order_id, line_no, sku, quantity, unit_price)
SELECT o.order_id, l,
       'SKU-' || lpad((1 + power({_h("m", 0)} / 268435456.0, 2) * {SKUS - 1})::int::text, 4, '0'),
       1 + {_h("m", 1)} % 4,
       5.99 + ((1 + power({_h("m", 0)} / 268435456.0, 2) * {SKUS - 1})::int * 37 % 200)
FROM shop.orders o,
     generate_series(1, 1 + o.order_id % 3) l,
     LATERAL (SELECT md5(:seed || ':i:' || o.order_id || ':' || l) AS m) m
"""

# Cases on ~8% of older deliveries: some still open, some closed recently (window restarts).
_CASES_SQL = f"""
INSERT INTO shop.after_sales_cases (case_id, order_id, kind, opened_at, closed_at, note)
SELECT row_number() OVER (ORDER BY o.order_id), o.order_id,
       (ARRAY['return', 'refund', 'exchange', 'complaint'])[1 + {_h("m", 1)} % 4],
       o.delivered_at + make_interval(days => {_h("m", 2)} % 5),
       CASE WHEN {_h("m", 3)} % 10 < 3 THEN NULL
            ELSE o.delivered_at + make_interval(days => {_h("m", 2)} % 5 + {_h("m", 3)} % 20) END,
       'Customer ' || o.receiver_name || ' called from ' || o.receiver_phone || ' about the '
           || (ARRAY['return', 'refund', 'exchange', 'complaint'])[1 + {_h("m", 1)} % 4]
FROM shop.orders o, LATERAL (SELECT md5(:seed || ':c:' || o.order_id) AS m) m
WHERE o.status = 'delivered' AND o.delivered_at < :as_of - interval '40 days'
  AND {_h("m", 0)} % 100 < 8
"""


# Paid and shipped orders are matched with one of the policy's carriers (docs/logistics.md).
_HAS_CARRIER = sa.text("""SELECT EXISTS (SELECT 1 FROM information_schema.columns
    WHERE table_schema = 'shop' AND table_name = 'orders' AND column_name = 'carrier')""")
_CARRIERS_SQL = f"""
UPDATE shop.orders
SET carrier = (CAST(:carriers AS text[]))[1 + {_h("md5(:seed || ':k:' || order_id)", 0)} % cardinality(CAST(:carriers AS text[]))]
WHERE status IN ('paid', 'shipped')
"""


class ShopNotEmpty(RuntimeError):
    """Refused to reseed a database that holds orders the demo did not put there."""


@dataclass
class SeedReport:
    orders: int
    items: int
    cases: int
    seed: int
    as_of: datetime


def _pools(seed: int) -> dict[str, list[str]]:
    fake = Faker(["zh_CN", "en_US"])
    fake.seed_instance(seed)
    return {
        "names": [fake.name() for _ in range(POOL)],
        "emails": [f"{fake.unique.user_name()}@{fake.free_email_domain()}" for _ in range(POOL)],
        "addresses": [fake.street_address() for _ in range(POOL)],
        "regions": REGIONS,
    }


def seed_shop(
    engine: Engine,
    orders: int = 50_000,
    seed: int = 7,
    as_of: datetime | None = None,
    on_progress: Callable[[str], None] = lambda _: None,
    replace: bool = True,
    carriers: Sequence[str] = (),
) -> SeedReport:
    """Fills shop.* with `orders` deterministic orders, replacing an earlier demo shop.

    Refuses to touch a shop whose orders were not seeded by this function.
    """
    as_of = as_of or datetime.now(UTC)
    with engine.begin() as conn:
        has_orders = conn.execute(_ORDERS).scalar()
        if has_orders and not conn.execute(_SEEDED).scalar():
            raise ShopNotEmpty(
                "shop.orders already holds orders that the demo did not create; the demo only seeds "
                "an empty shop or its own earlier seed. Point LIFECYCLE_DATABASE_URL at an empty database."
            )
        if has_orders and replace:
            on_progress("removing the previous demo shop")
            conn.execute(
                sa.text(
                    "TRUNCATE shop.after_sales_cases, shop.order_items, shop.orders, lifecycle.purge_ledger, "
                    "lifecycle.purge_runs, lifecycle.erasure_runs, lifecycle.erasure_waits, lifecycle.demo_seeds"
                )
            )
        on_progress(f"building name, address and email pools (Faker, seed {seed})")
        for pool, values in _pools(seed).items():
            conn.execute(
                sa.text(f"CREATE TEMP TABLE pool_{pool} (i int PRIMARY KEY, v text) ON COMMIT DROP")
            )
            conn.execute(
                sa.text(f"INSERT INTO pool_{pool} VALUES (:i, :v)"),
                [{"i": i, "v": v} for i, v in enumerate(values)],
            )
        params = {"n": orders, "seed": str(seed), "as_of": as_of, "customers": max(orders // 3, 1)}
        on_progress(f"inserting {orders:,} orders")
        conn.execute(sa.text(_ORDERS_SQL), params)
        on_progress("inserting order lines")
        items = conn.execute(sa.text(_ITEMS_SQL), {"seed": str(seed)}).rowcount
        on_progress("inserting after-sales cases")
        cases = conn.execute(sa.text(_CASES_SQL), {"seed": str(seed), "as_of": as_of}).rowcount
        if carriers and conn.execute(_HAS_CARRIER).scalar():
            on_progress(f"matching paid and shipped orders with carriers {', '.join(carriers)}")
            conn.execute(sa.text(_CARRIERS_SQL), {"seed": str(seed), "carriers": list(carriers)})
        conn.execute(
            sa.text("INSERT INTO lifecycle.demo_seeds (seed, orders, as_of) VALUES (:s, :n, :a)"),
            {"s": seed, "n": orders, "a": as_of},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE shop.orders, shop.order_items, shop.after_sales_cases"))
    return SeedReport(orders=orders, items=items, cases=cases, seed=seed, as_of=as_of)
