"""The raw tables the sales volume reads, as the validated policy maps them onto the shop's own.

The build and the change-capture triggers both read orders and order lines through this one
mapping, so a shop with other table or column names is counted by the same SQL. Its signature
names everything a published figure depends on; a day built under another signature is rebuilt.
"""

from __future__ import annotations

from lifecycle.orders import SALES, sql_list
from lifecycle.policy import Policy

# Bump when the build's rules (lifecycle/sales/daily.py) change, so every published day is rebuilt.
BUILD_VERSION = 1


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
