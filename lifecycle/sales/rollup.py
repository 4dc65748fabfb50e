"""Roll-up and differencing over sales lines: the machinery the planning tables and the guard share.

Every published sales table is a *partition* of the sales lines of its span: each line counts in
exactly one published row, or in none (withheld). A planning table's rows sit at levels of a
hierarchy (sku × region → sku → product line → all): a line counts in its finest cell that
reaches k customers, so what is too small below is counted, correctly, one level up.

Two partitions A and B open a subtraction: a row a of A minus the rows of B that lie wholly
inside it leaves a *remainder*, a set of lines anyone can total. `audit` finds every
remainder that covers between 1 and k−1 customers; the planning build merges cells upward until
there is none (secondary suppression), and the guard recomputes them from the published tables.

All of it runs in temp tables of the caller's transaction: pg_temp.sales_lines (one row per
sales line of the span) and pg_temp.sales_assign (partition, line, row key, level).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.sales.source import Source

OTHER = "OTHER"
CATALOGUE_NONE = "ALL"  # the one product line of a shop without a catalogue
UNLISTED = "UNLISTED"  # the product line of a sku the catalogue does not list

# The sales lines placed on local dates :first..:after-1, one row per order line.
_LINES_SELECT = """
    SELECT ({placed} AT TIME ZONE :tz)::date AS sales_date,
           CAST(i.{sku} AS text) COLLATE "C" AS sku,
           {product_line} COLLATE "C" AS product_line,
           coalesce(nullif(CAST(o.{region} AS text), ''), '{other}') COLLATE "C" AS region,
           o.{order_id} AS order_id, o.{customer_id} AS customer_id,
           i.{quantity} AS units, i.{quantity} * i.{unit_price} AS revenue
    FROM {orders} o
    JOIN {items} i ON i.{item_order} = o.{order_id}
    {catalogue_join}
    WHERE o.{status} IN ({statuses})
      AND {placed} >= (CAST(:first AS date)::timestamp AT TIME ZONE :tz)
      AND {placed} < (CAST(:after AS date)::timestamp AT TIME ZONE :tz)
"""
_LINES_SQL = """
CREATE TEMP TABLE sales_lines ON COMMIT DROP AS
SELECT row_number() OVER () AS line_id, line.*,
       line.sales_date - (extract(isodow FROM line.sales_date)::int - 1) AS week_start
FROM ({lines}) line
"""
_ASSIGN_TABLE = sa.text("""
CREATE TEMP TABLE IF NOT EXISTS sales_assign (
    part text NOT NULL, line_id bigint NOT NULL, row_key text COLLATE "C" NOT NULL,
    level int NOT NULL,
    PRIMARY KEY (part, line_id)
) ON COMMIT DROP
""")


def lines_select(src: Source, catalogue) -> str:
    """SELECT of the sales lines placed on local dates :first..:after-1 (binds :tz too)."""
    o, i = src.o, src.i
    if catalogue is None:
        product_line, join = f"'{CATALOGUE_NONE}'", ""
    else:
        product_line = f"coalesce(CAST(p.{catalogue.col('product_line')} AS text), '{UNLISTED}')"
        join = (
            f"LEFT JOIN {catalogue.sql} p ON CAST(p.{catalogue.col('sku')} AS text) = i.{i['sku']}"
        )
    return _LINES_SELECT.format(
        placed=f"o.{o['placed_at']}",
        sku=i["sku"],
        product_line=product_line,
        region=o["ship_region"],
        order_id=o["order_id"],
        customer_id=o["customer_id"],
        quantity=i["quantity"],
        unit_price=i["unit_price"],
        orders=src.orders,
        items=src.items,
        item_order=i["order_id"],
        catalogue_join=join,
        status=o["status"],
        statuses=src.statuses,
        other=OTHER,
    )


def load_lines(conn: Connection, src: Source, catalogue, first, after) -> int:
    """Fills pg_temp.sales_lines with the sales lines placed on first..after-1 (local dates)."""
    sql = _LINES_SQL.format(lines=lines_select(src, catalogue))
    rows = conn.execute(sa.text(sql), {"tz": src.tz, "first": first, "after": after}).rowcount
    conn.execute(sa.text("CREATE INDEX ON pg_temp.sales_lines (line_id)"))
    conn.execute(sa.text("ANALYZE pg_temp.sales_lines"))
    conn.execute(_ASSIGN_TABLE)
    return rows


@dataclass(frozen=True)
class Level:
    """One level of a hierarchy: the labels its rows carry, as SQL over a sales line."""

    name: str
    product_line: str
    sku: str
    region: str
    eligible: str = "true"  # which lines may count at this level


@dataclass(frozen=True)
class Partition:
    """A published table, or one window of it, as a partition of the sales lines."""

    name: str
    period: str  # SQL over a line: the period label (a week's Monday, a window's length)
    span: str  # SQL over a line: true when the line is in the table's span
    levels: tuple[Level, ...]

    def key(self, level: Level) -> str:
        return f"concat_ws('|', {self.period}, {level.product_line}, {level.sku}, {level.region})"


WEEKLY_LEVELS = (
    Level("sku_region", "product_line", "sku", "region", eligible=f"region <> '{OTHER}'"),
    Level("sku", "product_line", "sku", f"'{OTHER}'"),
    Level("product_line", "product_line", f"'{OTHER}'", f"'{OTHER}'"),
    Level("all", f"'{OTHER}'", f"'{OTHER}'", f"'{OTHER}'"),
)
WINDOW_LEVELS = (
    Level("sku", "product_line", "sku", "''"),
    Level("product_line", "product_line", f"'{OTHER}'", "''"),
    Level("all", f"'{OTHER}'", f"'{OTHER}'", "''"),
)


def assign(conn: Connection, part: Partition, k: int, forbidden: set[str]) -> None:
    """Counts each line of `part`'s span in its finest cell that covers at least k customers
    and is not forbidden; a line with no such cell, not even at the top, is withheld.

    One statement for all levels: each level's candidates are the lines the levels below did not
    place, carried from CTE to CTE, so no level looks its lines up in the assignment again."""
    conn.execute(sa.text("DELETE FROM pg_temp.sales_assign WHERE part = :p"), {"p": part.name})
    ctes = [f"r0 AS MATERIALIZED (SELECT * FROM pg_temp.sales_lines WHERE {part.span})"]
    for n, level in enumerate(part.levels):
        ctes += [
            f"""c{n} AS MATERIALIZED (
                SELECT line_id, customer_id, ({part.key(level)}) COLLATE "C" AS row_key
                FROM r{n} WHERE {level.eligible})""",
            f"""p{n} AS MATERIALIZED (
                SELECT line_id, row_key FROM c{n} JOIN (
                    SELECT row_key FROM c{n} GROUP BY row_key
                    HAVING count(DISTINCT customer_id) >= :k
                       AND NOT (row_key = ANY(CAST(:forbidden AS text[])))) ok USING (row_key))""",
        ]
        if n + 1 < len(part.levels):
            ctes.append(
                f"""r{n + 1} AS MATERIALIZED (SELECT * FROM r{n}
                WHERE NOT EXISTS (SELECT 1 FROM p{n} WHERE p{n}.line_id = r{n}.line_id))"""
            )
    placed = " UNION ALL ".join(
        f"SELECT :p, line_id, row_key, {n} FROM p{n}" for n in range(len(part.levels))
    )
    conn.execute(
        sa.text(
            f"WITH {', '.join(ctes)} "
            f"INSERT INTO pg_temp.sales_assign (part, line_id, row_key, level) {placed}"
        ),
        {"p": part.name, "k": k, "forbidden": sorted(forbidden)},
    )


@dataclass(frozen=True)
class Remainder:
    """A row of `outer` minus the rows of `inner` inside it: fewer than k customers are left."""

    outer: str
    outer_key: str
    inner: str
    smallest_inner_key: str
    customers: int


# Every line of the audited partitions with its row key in each (k0, k1, ...: NULL where the line
# is in no row of that partition): one pass over the assignment per audit round, so that each
# pair below reads one narrow table instead of joining the assignment twice.
_WIDE = """
CREATE TEMP TABLE sales_wide ON COMMIT DROP AS
SELECT l.customer_id, {columns}
FROM pg_temp.sales_lines l {joins}
"""
# For each row a of partition A (column {a}) that wholly contains at least one row of B (column
# {b}): the lines of a that are in no such row, and the distinct customers behind them. Hash
# aggregates only (distinct customers as DISTINCT pairs), and customers are counted only for the
# rows that are opened and keep lines: most rows of a long-tail shop are neither.
_REMAINDERS = """
WITH ab AS MATERIALIZED (
    SELECT customer_id, {a} AS ak, {b} AS bk
    FROM pg_temp.sales_wide WHERE {a} IS NOT NULL OR {b} IS NOT NULL
), inside AS MATERIALIZED (
    SELECT bk, min(ak) AS ak FROM ab WHERE bk IS NOT NULL
    GROUP BY bk HAVING count(ak) = count(*) AND min(ak) = max(ak)
), placed AS MATERIALIZED (
    SELECT ab.ak, ab.bk, ab.customer_id, i.bk IS NOT NULL AS covered
    FROM ab LEFT JOIN inside i ON i.bk = ab.bk WHERE ab.ak IS NOT NULL
), opened AS (
    SELECT ak FROM placed GROUP BY ak HAVING bool_or(covered) AND NOT bool_and(covered)
), found AS MATERIALIZED (
    SELECT ak, count(*) AS customers
    FROM (SELECT DISTINCT p.ak, p.customer_id FROM placed p JOIN opened USING (ak)
          WHERE NOT p.covered) d
    GROUP BY ak HAVING count(*) < :k
), partners AS (
    SELECT p.ak, p.bk, count(DISTINCT p.customer_id) AS customers
    FROM placed p JOIN found USING (ak) WHERE p.covered GROUP BY p.ak, p.bk
)
SELECT f.ak, f.customers,
       (SELECT bk FROM partners q WHERE q.ak = f.ak ORDER BY q.customers, q.bk LIMIT 1)
FROM found f ORDER BY f.ak
"""


def audit(
    conn: Connection, parts: list[str], k: int, involving: set[str] | None = None
) -> list[Remainder]:
    """Every row of one partition that, minus the rows of another it contains, leaves lines of
    fewer than k customers (a figure anyone could derive by subtraction), over every ordered pair
    of `parts`, or only the pairs with a partition of `involving` in them."""
    columns = ", ".join(f"a{n}.row_key AS k{n}" for n in range(len(parts)))
    joins = " ".join(
        f"LEFT JOIN pg_temp.sales_assign a{n} ON a{n}.part = :p{n} AND a{n}.line_id = l.line_id"
        for n in range(len(parts))
    )
    names = {f"p{n}": name for n, name in enumerate(parts)}
    conn.execute(sa.text("DROP TABLE IF EXISTS pg_temp.sales_wide"))
    conn.execute(sa.text(_WIDE.format(columns=columns, joins=joins)), names)
    conn.execute(sa.text("ANALYZE pg_temp.sales_wide"))  # temp tables get no autovacuum statistics
    found: list[Remainder] = []
    for a, outer in enumerate(parts):
        for b, inner in enumerate(parts):
            if outer == inner or (involving is not None and not {outer, inner} & involving):
                continue
            sql = sa.text(_REMAINDERS.format(a=f"k{a}", b=f"k{b}"))
            rows = conn.execute(sql, {"k": k}).all()
            found += [Remainder(outer, ak, inner, bk, n) for ak, n, bk in rows]
    return found


DAILY = "sales_volume_daily"
# The published daily table as a partition: a line counts in its own region's row, else in its
# sku's OTHER row of the day, else it is withheld.
_DAILY_ASSIGN = sa.text(f"""
INSERT INTO pg_temp.sales_assign (part, line_id, row_key, level)
SELECT '{DAILY}', l.line_id,
       concat_ws('|', l.sales_date, l.sku, coalesce(own.region, other.region)),
       CASE WHEN own.region IS NOT NULL THEN 0 ELSE 1 END
FROM pg_temp.sales_lines l
LEFT JOIN analytics.sales_volume_daily own
       ON own.sales_date = l.sales_date AND own.sku = l.sku AND own.region = l.region
      AND l.region <> '{OTHER}'
LEFT JOIN analytics.sales_volume_daily other
       ON other.sales_date = l.sales_date AND other.sku = l.sku AND other.region = '{OTHER}'
WHERE own.region IS NOT NULL OR other.region IS NOT NULL
""")


def assign_daily(conn: Connection) -> None:
    """Maps the lines to the published rows of analytics.sales_volume_daily."""
    conn.execute(sa.text("DELETE FROM pg_temp.sales_assign WHERE part = :p"), {"p": DAILY})
    conn.execute(_DAILY_ASSIGN)


def assign_published(
    conn: Connection, part: Partition, table: str, period: str, region: str = "region"
) -> None:
    """Maps the lines of `part`'s span to the finest published row of `table` that matches them,
    level by level: how a reader of the published table can place each sale."""
    conn.execute(sa.text("DELETE FROM pg_temp.sales_assign WHERE part = :p"), {"p": part.name})
    published = (
        f"SELECT concat_ws('|', {period}, product_line, sku, {region}) AS row_key FROM {table} t"
    )
    for depth, level in enumerate(part.levels):
        conn.execute(
            sa.text(f"""
            INSERT INTO pg_temp.sales_assign (part, line_id, row_key, level)
            SELECT :p, l.line_id, {part.key(level)}, :depth
            FROM pg_temp.sales_lines l
            WHERE ({part.span}) AND ({level.eligible}) AND NOT EXISTS (
                SELECT 1 FROM pg_temp.sales_assign a WHERE a.part = :p AND a.line_id = l.line_id)
              AND {part.key(level)} IN ({published})
        """),
            {"p": part.name, "depth": depth},
        )
