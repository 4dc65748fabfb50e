"""What the sales assets show in the UI makes the same run-log tokens night after night.

The guard compares every string a run stores with the raw zone; a token no clean pass has
compared has the raw zone hashed whole that night (lifecycle/guard/raw_values.py). The chart's
picture and the tables' row order change every night, so each is stored so that its tokens do
not: the tables as cells (lifecycle/shown_tables.py), the chart compared decoded
(lifecycle/guard/provenance.py).
"""

from __future__ import annotations

from assets.metadata import table
from lifecycle.guard.provenance import Provenance, log_tokens
from lifecycle.sales.charts import units_per_region
from lifecycle.sales.previews import day_preview
from orchestration.history import stored_texts
from tests.db.test_sales import DAY, YESTERDAY, customers_buy, refresh


def shown_tokens(engine, day) -> set[tuple[str, str]]:
    """The tokens of the night's stored preview, chart and table when `day` is the last day."""
    chart, per_region = units_per_region(engine, day)
    preview = day_preview(engine, day)
    texts = [chart, preview.caption, *stored_texts(table(per_region))]
    texts += stored_texts(table(preview.table))
    return {token for text in texts for token in log_tokens(text, Provenance())}


def test_a_new_day_in_another_order_makes_no_new_token(engine, policy):
    first, second = YESTERDAY - DAY, YESTERDAY
    with engine.begin() as conn:
        n = customers_buy(conn, 1, [1, 2, 3, 4, 5, 6], day=first, region="SH", sku="SKU-1")
        n = customers_buy(conn, n, [7, 8, 9, 10, 11], day=first, region="BJ", sku="SKU-2")
        n = customers_buy(conn, n, [12, 13, 14, 15, 16], day=second, region="SH", sku="SKU-1")
        customers_buy(conn, n, [17, 18, 19, 20, 21, 22, 23], day=second, region="BJ", sku="SKU-2")
    refresh(engine, policy)
    # The regions and the preview's rows come in the other order on the second night.
    assert units_per_region(engine, first)[1].rows[0][0] == "SH"
    assert units_per_region(engine, second)[1].rows[0][0] == "BJ"
    assert day_preview(engine, second).table.rows[0][0] == "SKU-2"
    seen = shown_tokens(engine, first)
    assert seen and shown_tokens(engine, second) <= seen
