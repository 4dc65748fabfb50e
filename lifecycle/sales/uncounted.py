"""Order lines no sales table can count: no sku, no quantity or no unit price, a quantity that is
not a whole number, or a sku or region too long to key a row by.

Every published sales row is keyed by its sku and region and carries units and revenue, so a
sales line missing one of them, or with a label over MAX_LABEL_CHARS (no sku or region code is;
a pasted description or address can be), has no row to count in; a line sold by weight (0.4 kg)
has no number of units to add to one. The reference schema forbids
missing ones; a shop's own line table, mapped in the policy, may not. The builds leave such
lines out (`Source.countable`) rather than fail the night or publish a row keyed by nothing, and
`uncounted_lines` says how many were left out of a build's dates and names a few of their orders
(order ids, never a person), with the fix, so that a figure short of those units is never taken
for the shop's whole sales. It counts, in the same pass, the lines of orders whose status is none
of the five lifecycle knows, which no table counts either (`UncountedLines.status_warning`).

`lines_without_customer` does the same for the lines the DP release alone leaves out: those of
orders that name no customer. The k rule counts them in units and in no row's customers, which
can only withhold more; the release's bound is per person, and SQL groups NULLs together, so
counted as one customer every guest shared one cap, and one guest's lines could move the release
by up to twice the bound its noise was scaled for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.orders import STATUSES, sql_list
from lifecycle.sales.source import MAX_LABEL_CHARS, Source

EXAMPLES = 5  # order ids named in a build's log line

STATUS_CHARS = 40  # a status named in a log line is cut to this many characters
# The lines of sales that no table can count, and the lines of orders whose status is none of
# STATUSES (so neither a sale nor a known non-sale), in one pass over the dates' lines.
_UNCOUNTED = """
    SELECT count(*) FILTER (WHERE broken), round(coalesce(sum(quantity) FILTER (WHERE broken), 0)),
           (array_agg(DISTINCT order_id ORDER BY order_id) FILTER (WHERE broken))[1:{examples}],
           count(*) FILTER (WHERE unknown),
           round(coalesce(sum(quantity) FILTER (WHERE unknown), 0)),
           (array_agg(DISTINCT coalesce(left(status, {status_chars}), 'NULL') ORDER BY
                coalesce(left(status, {status_chars}), 'NULL')) FILTER (WHERE unknown))[1:{examples}]
    FROM (
        SELECT o.{order_id} AS order_id, CAST(o.{status} AS text) AS status,
               i.{quantity} AS quantity,
               o.{status} IN ({statuses}) AND ({countable}) IS NOT TRUE AS broken,
               o.{status} IS NULL OR o.{status} NOT IN ({known}) AS unknown
        FROM {orders} o
        JOIN {items} i ON i.{item_order} = o.{order_id}
        WHERE ({within})
    ) line
    WHERE broken OR unknown
"""


@dataclass(frozen=True)
class UncountedLines:
    """The sales lines of a build's dates that no sales table counts: how many, and a few orders."""

    table: str
    lines: int = 0
    units: int = 0  # of the lines that name a quantity, rounded
    orders: tuple[str, ...] = ()
    orders_table: str = ""
    unknown_status_lines: int = 0  # lines of orders whose status is none of STATUSES
    unknown_status_units: int = 0
    unknown_statuses: tuple[str, ...] = ()  # a few of those statuses, cut to STATUS_CHARS

    def metadata(self) -> dict[str, object]:
        """The counts, for a build's Dagster metadata."""
        return {
            "order_lines_not_counted": self.lines,
            "units_not_counted": self.units,
            "order_lines_of_unknown_status": self.unknown_status_lines,
            "units_of_unknown_status": self.unknown_status_units,
        }

    def warnings(self) -> tuple[str | None, str | None]:
        """Both log lines a build gives for what it did not count: `warning` and
        `status_warning`, each None when clean."""
        return self.warning(), self.status_warning()

    def status_warning(self) -> str | None:
        """One line naming the statuses no sales table knows, with the fix; None when clean.

        Retention keeps such orders as anomalies; the sales tables count only paid, shipped and
        delivered orders, so a shop whose statuses read `approved`, `Paid` or `completed` would
        otherwise see its figures, and their share of units sold, cover only part of its sales
        with nothing said."""
        if not self.unknown_status_lines:
            return None
        named = ", ".join(repr(status) for status in self.unknown_statuses)
        return (
            f"raw.orders {self.orders_table}: {self.unknown_status_lines} order line(s) "
            f"({self.unknown_status_units} unit(s)) of orders whose status is none of "
            f"{', '.join(STATUSES)} (e.g. {named}); no sales table counts them, sale or not, "
            "until the shop's statuses are given as those (a generated column on the orders "
            "table that translates them, mapped as status: docs/policy.md)"
        )

    def warning(self) -> str | None:
        """One line saying what was found, what the builds did, and the fix; None when clean."""
        if not self.lines:
            return None
        named = ", ".join(self.orders)
        more = " and more" if self.lines > len(self.orders) else ""
        return (
            f"raw.order_items {self.table}: {self.lines} sales line(s) without a sku, a quantity "
            f"or a unit price, with a quantity that is not a whole number, or with a sku or "
            f"region over {MAX_LABEL_CHARS} characters (orders {named}{more}); they are left out "
            f"of the sales tables ({self.units} unit(s)) until each line names all three, "
            "its quantity in whole units (map quantity to a column of packs or items sold), and "
            "its codes are short"
        )


def uncounted_lines(
    conn: Connection, src: Source, ranges: list[tuple[date, date]]
) -> UncountedLines:
    """The sales lines placed on the local dates of `ranges` ([first, after) pairs) that
    `Source.countable` leaves out, and the lines of those dates' orders whose status is none of
    STATUSES."""
    if not ranges:
        return UncountedLines(src.items_table, orders_table=src.orders_table)
    o, i = src.o, src.i
    sql = _UNCOUNTED.format(
        quantity=i["quantity"],
        order_id=o["order_id"],
        examples=EXAMPLES,
        status_chars=STATUS_CHARS,
        orders=src.orders,
        items=src.items,
        item_order=i["order_id"],
        status=o["status"],
        statuses=src.statuses,
        known=sql_list(STATUSES),
        within=src.placed_on(len(ranges)),
        countable=src.countable(),
    )
    lines, units, orders, odd, odd_units, statuses = conn.execute(
        sa.text(sql), src.range_params(ranges)
    ).one()
    return UncountedLines(
        src.items_table,
        int(lines),
        int(units),
        tuple(str(order) for order in orders or ()),
        orders_table=src.orders_table,
        unknown_status_lines=int(odd),
        unknown_status_units=int(odd_units),
        unknown_statuses=tuple(statuses or ()),
    )


# The loaded lines (pg_temp.sales_lines) of :first..:after-1 whose order names no customer.
_WITHOUT_CUSTOMER = sa.text(f"""
    SELECT count(*), coalesce(sum(units), 0),
           (array_agg(DISTINCT order_id ORDER BY order_id))[1:{EXAMPLES}]
    FROM pg_temp.sales_lines
    WHERE customer_id IS NULL AND sales_date >= :first AND sales_date < :after
""")


@dataclass(frozen=True)
class LinesWithoutCustomer:
    """Sales lines whose order names no customer (a mapped table's guest checkouts), which the
    DP release leaves out: how many, their units, and a few orders."""

    table: str
    lines: int = 0
    units: int = 0
    orders: tuple[str, ...] = ()

    def metadata(self) -> dict[str, object]:
        """The counts, for the release's Dagster metadata."""
        return {"order_lines_without_customer": self.lines, "units_without_customer": self.units}

    def warning(self) -> str | None:
        """One line saying what was found, what the release did, and the fix; None when clean."""
        if not self.lines:
            return None
        more = " and more" if self.lines > len(self.orders) else ""
        return (
            f"raw.orders {self.table}: {self.lines} sales line(s) of orders without a customer "
            f"(orders {', '.join(self.orders)}{more}; {self.units} unit(s)) are left out of the "
            "DP release: its bound is per person, and a line that names nobody cannot be "
            "bounded; map customer_id to a column every sale fills"
        )


def lines_without_customer(
    conn: Connection, src: Source, first: date, after: date
) -> LinesWithoutCustomer:
    """The loaded sales lines (pg_temp.sales_lines) of local dates first..after-1 whose order
    names no customer."""
    lines, units, orders = conn.execute(_WITHOUT_CUSTOMER, {"first": first, "after": after}).one()
    return LinesWithoutCustomer(
        src.orders_table, int(lines), int(units), tuple(str(order) for order in orders or ())
    )
