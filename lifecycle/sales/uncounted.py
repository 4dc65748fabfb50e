"""Order lines no sales table can count: no sku, no quantity or no unit price, or a sku or region
too long to key a row by.

Every published sales row is keyed by its sku and region and carries units and revenue, so a
sales line missing one of them, or with a label over MAX_LABEL_CHARS (no sku or region code is;
a pasted description or address can be), has no row to count in. The reference schema forbids
missing ones; a shop's own line table, mapped in the policy, may not. The builds leave such lines out (`Source.countable`) rather
than fail the night or publish a row keyed by nothing, and `uncounted_lines` says how many
were left out of a build's dates and names a few of their orders (order ids, never a person),
with the fix, so that a figure short of those units is never taken for the shop's whole sales.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.sales.source import MAX_LABEL_CHARS, Source

EXAMPLES = 5  # order ids named in a build's log line

_UNCOUNTED = """
    SELECT count(*), coalesce(sum(i.{quantity}), 0),
           (array_agg(DISTINCT o.{order_id} ORDER BY o.{order_id}))[1:{examples}]
    FROM {orders} o
    JOIN {items} i ON i.{item_order} = o.{order_id}
    WHERE o.{status} IN ({statuses}) AND ({within}) AND ({countable}) IS NOT TRUE
"""


@dataclass(frozen=True)
class UncountedLines:
    """The sales lines of a build's dates that no sales table counts: how many, and a few orders."""

    table: str
    lines: int = 0
    units: int = 0  # of the lines that name a quantity
    orders: tuple[str, ...] = ()

    def metadata(self) -> dict[str, object]:
        """The counts, for a build's Dagster metadata."""
        return {"order_lines_not_counted": self.lines, "units_not_counted": self.units}

    def warning(self) -> str | None:
        """One line saying what was found, what the builds did, and the fix; None when clean."""
        if not self.lines:
            return None
        named = ", ".join(self.orders)
        more = " and more" if self.lines > len(self.orders) else ""
        return (
            f"raw.order_items {self.table}: {self.lines} sales line(s) without a sku, a quantity "
            f"or a unit price, or with a sku or region over {MAX_LABEL_CHARS} characters (orders "
            f"{named}{more}); they are left out of the sales tables ({self.units} unit(s)) until "
            f"each line names all three and its codes are short"
        )


def uncounted_lines(
    conn: Connection, src: Source, ranges: list[tuple[date, date]]
) -> UncountedLines:
    """The sales lines placed on the local dates of `ranges` ([first, after) pairs) that
    `Source.countable` leaves out."""
    if not ranges:
        return UncountedLines(src.items_table)
    o, i = src.o, src.i
    sql = _UNCOUNTED.format(
        quantity=i["quantity"],
        order_id=o["order_id"],
        examples=EXAMPLES,
        orders=src.orders,
        items=src.items,
        item_order=i["order_id"],
        status=o["status"],
        statuses=src.statuses,
        within=src.placed_on(len(ranges)),
        countable=src.countable(),
    )
    lines, units, orders = conn.execute(sa.text(sql), src.range_params(ranges)).one()
    return UncountedLines(
        src.items_table, int(lines), int(units), tuple(str(order) for order in orders or ())
    )
