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
# 5: a customer with both a sale and a return booked as a negative line in a cell counts toward
#    none of its k (`counted_customers`).
BUILD_VERSION = 5
# The longest sku, region or product line a published row is keyed by. A key is one btree index
# entry, which PostgreSQL caps at about 2,700 bytes: three labels of 200 characters of up to four
# bytes each, with the dates and the level, stay under it; one label of 3,000 characters failed
# the night ("index row size exceeds maximum").
MAX_LABEL_CHARS = 200


def counted_customers(
    customer: str = "customer_id", units: str = "units", where: str | None = None
) -> str:
    """SQL aggregate over a group of sales lines: its customers who count toward k, those whose
    lines in it all move units the same way (all sales, or all returns).

    A shop that books a return as a negative line lets a customer's lines of a row net to nothing:
    a buyer of 5 units and two customers who each bought one and booked it back made a row of
    three customers at k = 3 that published the one buyer's 5 units. A customer whose lines in the
    group share a sign adds to (or takes from) its units, whatever the group: a cell, a rolled-up
    row, a remainder or an atom of the audit. One with both counts for none: stricter than netting
    (a customer who bought 3 and returned 1 counts for none either), but it composes like
    count(DISTINCT), which netting does not: with P the customers with a sale in the group and N
    those with a return, |P ∪ N| - |P ∩ N| = 2|P ∪ N| - |P| - |N|. Lines of quantity zero are no
    sale (`Source.sold`), so every line is in P or N. A guest's lines (no customer) count for none,
    as before. `where`: only the group's lines that meet it (a FILTER clause)."""
    only = f" FILTER (WHERE {where})" if where else ""
    return (
        f"(2 * count(DISTINCT {customer}){only}"
        f" - count(DISTINCT CASE WHEN {units} > 0 THEN {customer} END){only}"
        f" - count(DISTINCT CASE WHEN {units} < 0 THEN {customer} END){only})"
    )


def counts_toward_k(units: str = "units") -> str:
    """SQL aggregate over one customer's lines of a group: true when the customer counts toward
    the group's k (`counted_customers`), for a statement that groups by customer already."""
    return f"(bool_and({units} > 0) OR bool_and({units} < 0))"


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
