"""The raw tables the sales volume reads, as the validated policy maps them onto the shop's own.

The build and the change-capture triggers both read orders and order lines through this one
mapping, so a shop with other table or column names is counted by the same SQL. Its signature
names everything a published figure depends on; a day built under another signature is rebuilt.
"""

from __future__ import annotations

from datetime import date

from lifecycle.orders import SALES, sql_list
from lifecycle.policy import Policy

# Bump when the build's rules (lifecycle/sales/daily.py) change, so every published day is rebuilt.
# 2: an order line without a sku, a quantity or a unit price is not counted (`Source.countable`),
#    and a placed_at without a time zone is dated as the session reads it (`Source.local_date`).
# 3: nor is a line whose sku, or whose order's region, is longer than MAX_LABEL_CHARS.
# 4: nor is a line whose quantity is not a whole number, and a line of quantity zero is no sale
#    (`Source.sold`): it counts its order and customer toward no row.
BUILD_VERSION = 4
# The longest sku, region or product line a published row is keyed by. A key is one btree index
# entry, which PostgreSQL caps at about 2,700 bytes: three labels of 200 characters of up to four
# bytes each, with the dates and the level, stay under it; one label of 3,000 characters failed
# the night ("index row size exceeds maximum").
MAX_LABEL_CHARS = 200


class Source:
    """Quoted names of the raw tables and the columns the build reads, from the validated policy."""

    def __init__(self, policy: Policy):
        o, i = policy.raw.orders, policy.raw.order_items
        self.orders_table, self.items_table = o.table, i.table
        self.orders, self.items = o.sql, i.sql
        self.o = {role: o.col(role) for role in o.columns}
        self.i = {role: i.col(role) for role in i.columns}
        self.statuses = sql_list(SALES)
        self.tz = policy.analytics.timezone
        self.k = policy.analytics.min_customers_per_cell
        used_o = ("order_id", "customer_id", "status", "placed_at", "ship_region")
        used_i = ("order_id", "sku", "quantity", "unit_price")
        self.signature = (
            f"v{BUILD_VERSION} tz={self.tz} k={self.k} statuses={','.join(SALES)} "
            f"orders={o.table}({','.join(o.columns[r] for r in used_o)}) "
            f"items={i.table}({','.join(i.columns[r] for r in used_i)})"
        )

    def local_date(self, orders: str = "o") -> str:
        """SQL: the local date (`analytics.timezone`, bound as :tz) on which `orders` was placed.

        Read as timestamptz first: a shop's own table may hold placed_at without a time zone,
        which PostgreSQL reads in the session's time zone wherever it compares it with an instant
        (the day ranges, the change capture). `AT TIME ZONE` on such a value would instead take it
        as local time in :tz, so a line would be labelled with another date than the day whose
        range selected it."""
        return f"(CAST({orders}.{self.o['placed_at']} AS timestamptz) AT TIME ZONE :tz)::date"

    def placed_on(self, ranges: int, orders: str = "o") -> str:
        """SQL: true when the order `orders` was placed on a local date of one of `ranges`
        half-open date ranges, bound as :lo0, :hi0, … and :tz (`range_params`)."""
        placed = f"{orders}.{self.o['placed_at']}"
        return " OR ".join(
            f"({placed} >= (CAST(:lo{n} AS date)::timestamp AT TIME ZONE :tz) "
            f"AND {placed} < (CAST(:hi{n} AS date)::timestamp AT TIME ZONE :tz))"
            for n in range(ranges)
        )

    def range_params(self, ranges: list[tuple[date, date]]) -> dict[str, object]:
        """The parameters of `placed_on` for `ranges`: [first, after) pairs of local dates."""
        params: dict[str, object] = {"tz": self.tz}
        for n, (lo, hi) in enumerate(ranges):
            params[f"lo{n}"], params[f"hi{n}"] = lo, hi
        return params

    def countable(self, items: str = "i", orders: str = "o") -> str:
        """SQL: true when the order line `items` names a sku (not blank), a quantity in whole
        units and a unit price, the three every sales table needs, and its sku and its order's
        (`orders`) region are labels a published row can be keyed by (at most MAX_LABEL_CHARS).

        A mapped line table may allow them NULL where the reference schema does not. Counted as
        it stood, a line without a sku put NULL into a published row's key and sku column, and
        the night failed on a NOT NULL constraint; a sku of thousands of characters failed it on
        the size of an index entry. A quantity of 0.4 (a line sold by weight) went into the daily
        table's `units bigint` summed per cell and into the planning tables rounded per row, so
        the tables disagreed and such lines' units were published as whatever rounding made of
        them. Every sales build leaves such lines out, and says how many and which orders
        (lifecycle.sales.uncounted)."""
        i, sku = self.i, f"CAST({items}.{self.i['sku']} AS text)"
        region = f"CAST({orders}.{self.o['ship_region']} AS text)"
        quantity = f"{items}.{i['quantity']}"
        return (
            f"btrim({sku}) <> '' AND length({sku}) <= {MAX_LABEL_CHARS} "
            f"AND coalesce(length({region}), 0) <= {MAX_LABEL_CHARS} "
            f"AND {quantity} = trunc({quantity}) AND {items}.{i['unit_price']} IS NOT NULL"
        )

    def sold(self, items: str = "i") -> str:
        """SQL: true when the order line `items` moves units: its quantity is not zero.

        A line of quantity zero is what an order edit leaves of a removed item on many shop
        systems. Counted, it added its units (none) to a row and its customer to the row's
        customers: a sku-day with one buyer and four such customers reached k = 5 and published
        that one buyer's units. It is no sale, so no table counts it, and nothing names it."""
        return f"{items}.{self.i['quantity']} <> 0"
