"""The synthetic shop looks like a shop to a planner: long tail, skewed regions, repeat buyers,
weekly rhythm, the last days as full as the others; and the catalogue is mapped only if asked."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from lifecycle import synthetic
from lifecycle.policy import PolicyError, check_policy_against_database, parse_policy
from tests.conftest import AS_OF

SALE = "status IN ('paid', 'shipped', 'delivered')"


def test_the_synthetic_shop_has_a_long_tail_skewed_regions_and_full_recent_days(engine):
    synthetic.seed_shop(engine, orders=6000, seed=5, as_of=AS_OF)
    with engine.connect() as conn:
        one = lambda q: conn.execute(sa.text(q)).scalar()  # noqa: E731
        skus = one("SELECT count(DISTINCT sku) FROM shop.order_items")
        lines = one("SELECT count(DISTINCT product_line) FROM shop.products")
        top_sku_share = one("""SELECT max(u) / sum(u) FROM (SELECT sum(quantity) u
            FROM shop.order_items GROUP BY sku) s""")
        top_region_share = one(f"""SELECT max(n)::numeric / sum(n) FROM (SELECT count(*) n
            FROM shop.orders WHERE {SALE} GROUP BY ship_region) r""")
        repeat_share = one("""SELECT avg((n > 1)::int) FROM (SELECT count(*) n FROM shop.orders
            GROUP BY customer_id) c""")
        per_day = dict(
            conn.execute(
                sa.text(f"""SELECT placed_at::date, count(*) FROM shop.orders WHERE {SALE}
                    AND placed_at >= CAST(:as_of AS timestamptz) - interval '29 days'
                    AND placed_at < CAST(:as_of AS date) GROUP BY 1"""),
                {"as_of": AS_OF},
            ).all()
        )
        saturday_over_monday = one(f"""SELECT sum((extract(isodow FROM placed_at) = 6)::int)::numeric
            / sum((extract(isodow FROM placed_at) = 1)::int) FROM shop.orders WHERE {SALE}""")
    assert skus > 1000 and lines == len(synthetic.PRODUCT_LINES)
    assert 0.01 < top_sku_share < 0.06  # a best seller, not a tenth of the shop
    assert top_region_share > 0.15  # a few large regions, many small ones
    assert repeat_share > 0.3
    assert saturday_over_monday > 1.1
    last_week = [per_day[AS_OF.date().fromordinal(AS_OF.toordinal() - n)] for n in range(1, 8)]
    assert sum(last_week) > 0.8 * 7 * sum(per_day.values()) / len(per_day)


def test_the_catalogue_is_optional_and_checked_against_the_database(engine):
    without = parse_policy('version: "t"\n', Path("policy.yaml"))
    mapped = parse_policy(
        'version: "t"\nraw: {catalogue: {table: shop.goods, columns: {product_line: line}}}\n',
        Path("policy.yaml"),
    )
    assert without.raw.catalogue is None
    assert mapped.raw.catalogue.columns == {"sku": "sku", "product_line": "line"}
    with engine.connect() as conn, pytest.raises(PolicyError) as err:
        check_policy_against_database(mapped, conn)
    assert "policy.yaml: raw.catalogue: shop.goods has no column 'sku'" in str(err.value)
