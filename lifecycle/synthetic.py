"""A deterministic synthetic shop for the demo and the benchmarks.

Faker (fixed seed) fills small pools of names, addresses and emails; PostgreSQL combines them
with md5-derived pseudo-random numbers in one INSERT … SELECT per table, so a million orders
take seconds and the same seed gives the same shop on every server and version.

The mix covers every rule: delivered orders across 400 days (most past their window), recent
deliveries, cancellations, abandoned carts, paid and shipped orders (some stale), open and
recently closed after-sales cases, and a few rows that cannot be judged (anomalies).

It looks like a shop to a planner: a long-tail catalogue of SKUS skus in product lines of uneven
size (shop.products, when the table exists) with Zipf-like popularity, regions skewed towards a
few large ones, repeat customers (a few buy often, most once or twice), more orders at the end of
the week, and the last days as full as any other.
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
SKUS = 2000  # a long-tail catalogue
ZIPF_S, ZIPF_Q = 1.1, 5  # the sku of popularity rank r sells about ∝ 1 / (r + ZIPF_Q)^ZIPF_S
PRODUCT_LINES = [
    "audio",
    "bags",
    "bath",
    "bedding",
    "cameras",
    "cleaning",
    "cookware",
    "fitness",
    "garden",
    "gaming",
    "kids",
    "kitchen",
    "lighting",
    "luggage",
    "office",
    "outdoor",
    "pet",
    "phones",
    "shoes",
    "snacks",
    "storage",
    "tea",
    "tools",
    "toys",
]

_SEEDED = sa.text("SELECT count(*) FROM lifecycle.demo_seeds")
_ORDERS = sa.text("SELECT EXISTS (SELECT 1 FROM shop.orders)")

# 28-bit pseudo-random numbers from one md5: h(m, k) is the k-th 7-hex-digit slice.
_H = "('x' || substr({m}, {start}, 7))::bit(28)::int"


def _h(m: str, k: int) -> str:
    return _H.format(m=m, start=1 + 7 * k)


# Weekly seasonality: the share (in %) of a week's orders placed on Monday … Sunday.
WEEKDAY_SHARES = (13, 13, 14, 14, 15, 17, 14)
WEEKS = 58  # sales span about 400 days
_WEEKDAY = (
    "CASE "
    + " ".join(f"WHEN h7 % 100 < {sum(WEEKDAY_SHARES[: n + 1])} THEN {n}" for n in range(6))
    + " ELSE 6 END"
)


def _zipf_rank(u: str, n: int, s: float, q: int) -> str:
    """SQL for a rank r in 1..n drawn with probability about ∝ 1/(r + q)^s from a uniform u in [0, 1)
    (Zipf-Mandelbrot: the offset q keeps the best seller from taking a tenth of all units)."""
    lo, hi = float(1 + q) ** (1 - s), float(n + 1 + q) ** (1 - s)
    return f"greatest(1, least({n}, floor(power({lo!r} + ({hi - lo!r}) * ({u}), {1 / (1 - s)!r}))::int - {q}))"


# Every order but a few odd ones is placed at `ts`: a weekday drawn with WEEKDAY_SHARES in one of
# the last WEEKS weeks up to as_of, so yesterday is as full as any other day. Its kind decides what
# happened next: the normal flow (paid, shipped the next day, delivered 1-5 days after placing,
# as far as as_of allows), a cancellation, an abandoned cart, an order stuck in service (paid or
# shipped and never delivered; only orders of the last 70 days, a few of them stale), or an odd row
# that cannot be judged (recent deliveries with missing, future or impossible dates).
_ORDERS_SQL = f"""
WITH base AS MATERIALIZED (
    SELECT g AS order_id, {_h("m1", 0)} % 10000 AS bucket, {_h("m1", 1)} AS h2, {_h("m1", 2)} AS h3,
           {_h("m1", 3)} AS h4, {_h("m2", 0)} AS h5, {_h("m2", 1)} AS h6, {_h("m2", 2)} AS h7,
           {_h("m2", 3)} AS h8, m2
    FROM generate_series(1, :n) g,
         LATERAL (SELECT md5(:seed || ':a:' || g) AS m1, md5(:seed || ':b:' || g) AS m2) m
), placed AS (
    SELECT b.*,
        :as_of - make_interval(secs => 3600 + h2 % (29 * 86400)) AS event_at,
        make_interval(secs => 86400 + h4 % (4 * 86400)) AS lead,
        (date_trunc('week', CAST(:as_of AS timestamptz) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
            - make_interval(days => 7 * (h8 % {WEEKS}) - ({_WEEKDAY}))
            + make_interval(secs => h2 % 86400) AS drawn
    FROM base b
), timed AS MATERIALIZED (
    SELECT p.*, ts,
        CASE WHEN bucket < 6000 OR bucket >= 8100 AND bucket < 9900 THEN 'flow'
             WHEN bucket < 7000 THEN 'cancel'
             WHEN bucket < 7500 THEN 'abandon'
             WHEN bucket < 8100 AND ts <= :as_of - interval '70 days' THEN 'flow'
             WHEN bucket < 7800 THEN 'stuck_paid'
             WHEN bucket < 8100 THEN 'stuck_shipped'
             ELSE 'odd' END AS kind
    FROM placed p,
         LATERAL (SELECT CASE WHEN drawn > :as_of THEN drawn - interval '{7 * WEEKS} days'
                              ELSE drawn END AS ts) t
)
INSERT INTO shop.orders (order_id, customer_id, status, placed_at, paid_at, shipped_at, delivered_at,
    cancelled_at, ship_region, receiver_name, receiver_phone, receiver_email, receiver_address,
    receiver_postcode, payment_ref)
SELECT order_id,
    1 + floor(:customers * power(h3 / 268435456.0::float8, 1.8))::int,
    CASE kind
        WHEN 'flow' THEN CASE WHEN ts + lead <= :as_of THEN 'delivered'
                              WHEN ts + interval '1 day' <= :as_of THEN 'shipped' ELSE 'paid' END
        WHEN 'cancel' THEN 'cancelled'
        WHEN 'abandon' THEN 'placed'
        WHEN 'stuck_paid' THEN 'paid'
        WHEN 'stuck_shipped' THEN CASE WHEN ts + interval '1 day' <= :as_of THEN 'shipped'
                                       ELSE 'paid' END
        ELSE CASE WHEN bucket < 9990 THEN 'delivered' ELSE 'cancelled' END END,
    CASE WHEN kind = 'odd' THEN event_at - lead ELSE ts END,
    CASE WHEN kind IN ('flow', 'stuck_paid', 'stuck_shipped') THEN ts + interval '10 minutes'
         WHEN kind = 'odd' THEN event_at - lead + interval '10 minutes' END,
    CASE WHEN kind IN ('flow', 'stuck_shipped') AND ts + interval '1 day' <= :as_of
             THEN ts + interval '1 day'
         WHEN kind = 'odd' AND bucket < 9990 THEN event_at - lead + interval '1 day' END,
    CASE WHEN kind = 'flow' AND ts + lead <= :as_of THEN ts + lead
         WHEN kind <> 'odd' THEN NULL
         WHEN bucket < 9960 THEN event_at
         WHEN bucket >= 9970 AND bucket < 9980 THEN :as_of + interval '2 days'
         WHEN bucket >= 9980 AND bucket < 9990 THEN event_at - lead - interval '1 day' END,
    CASE WHEN kind = 'cancel' THEN least(ts + interval '2 hours', :as_of) END,
    (SELECT v FROM pool_regions
     WHERE i = least({len(REGIONS) - 1},
                     floor({len(REGIONS)} * power(h5 / 268435456.0::float8, 2.2))::int)),
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

# A sku's number spreads popularity ranks over the catalogue (7919 is prime to SKUS), so the best
# sellers are not all in the first product line.
_SKU_NO = f"((({_zipf_rank(_h('m', 0) + ' / 268435456.0::float8', SKUS, ZIPF_S, ZIPF_Q)}) - 1) * 7919 % {SKUS} + 1)"

_ITEMS_SQL = f"""
INSERT INTO shop.order_items (order_id, line_no, sku, quantity, unit_price)
SELECT order_id, l, 'SKU-' || lpad(sku_no::text, 4, '0'),
       1 + (h1 % 10 >= 7)::int + 2 * (h1 % 20 = 19)::int,
       5.99 + (sku_no * 37 % 200)
FROM (
    SELECT o.order_id, l, {_SKU_NO} AS sku_no, {_h("m", 1)} AS h1
    FROM shop.orders o,
         generate_series(1, 1 + o.order_id % 3) l,
         LATERAL (SELECT md5(:seed || ':i:' || o.order_id || ':' || l) AS m) m
) line
"""

# Product lines of uneven size: the first lines hold few skus, the last many.
_PRODUCTS_SQL = f"""
INSERT INTO shop.products (sku, product_line)
SELECT 'SKU-' || lpad(n::text, 4, '0'),
       (CAST(:lines AS text[]))[1 + floor(cardinality(CAST(:lines AS text[]))
                                          * power((n - 1) / {SKUS}.0::float8, 0.7))::int]
FROM generate_series(1, {SKUS}) n
"""
_HAS_PRODUCTS = sa.text("SELECT to_regclass('shop.products') IS NOT NULL")

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


# clock_timestamp(), not now(): a reseed in the same transaction as an installation still differs.
_NEW_INSTALLATION = """
    DELETE FROM lifecycle.installation;
    INSERT INTO lifecycle.installation (installed_at) VALUES (clock_timestamp())
"""


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
                    "lifecycle.purge_runs, lifecycle.erasure_runs, lifecycle.erasure_waits, "
                    "lifecycle.erasure_checks, lifecycle.statistics_erasures, lifecycle.demo_seeds"
                )
            )
            # Their hash chains start again with the new shop (lifecycle/ledger/chain.py), and the
            # new shop is a new installation: its identity changes, so the anchors the run history
            # holds for the previous demo shop are no evidence about this one (a second `make demo`
            # would otherwise fail ledger_chain_intact on links that no longer exist).
            conn.execute(
                sa.text(
                    "DELETE FROM lifecycle.ledger_links WHERE chain IN ('purge_ledger', 'erasure_runs'); "
                    "DELETE FROM lifecycle.ledger_seals WHERE chain IN ('purge_ledger', 'erasure_runs')"
                )
            )
            conn.execute(sa.text(_NEW_INSTALLATION))
        # One wide expression per row: compiling it (JIT) costs more than evaluating it.
        conn.execute(sa.text("SET LOCAL jit = off"))
        has_products = conn.execute(_HAS_PRODUCTS).scalar()
        if has_products:
            conn.execute(sa.text("DELETE FROM shop.products"))
            conn.execute(sa.text(_PRODUCTS_SQL), {"lines": PRODUCT_LINES})
        on_progress(f"building name, address and email pools (Faker, seed {seed})")
        for pool, values in _pools(seed).items():
            conn.execute(
                sa.text(f"CREATE TEMP TABLE pool_{pool} (i int PRIMARY KEY, v text) ON COMMIT DROP")
            )
            conn.execute(
                sa.text(f"INSERT INTO pool_{pool} VALUES (:i, :v)"),
                [{"i": i, "v": v} for i, v in enumerate(values)],
            )
        params = {"n": orders, "seed": str(seed), "as_of": as_of, "customers": max(orders // 2, 1)}
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
