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

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.sales.catalogue import UNLISTED, one_line_per_sku
from lifecycle.sales.source import Source, counted_customers, counts_toward_k

OTHER = "OTHER"
# The protection the planning builds apply, part of the rules a table's freshness hash covers
# (lifecycle.sales.freshness): raised whenever the same lines would now be published differently,
# so tables built under an earlier one are rebuilt the next night instead of kept as current.
# 2: the exact audit of derivable cells, the weekly sums and the window differences.
# 3: row keys keep a label from the data apart from the roll-up label (`key_label`).
# 4: a customer with a sale and a return in a row or remainder counts toward none of its k
#    (source.counted_customers).
# 5: a summary window's all row is spared once, product lines merged into it, before it is
#    withheld (planning._spare_top_rows); the summary's line sums and window totals are audited,
#    and its window differences against last week's copies (planning.SUMMARY_SUMS).
# 6: the summary's windows are fixed blocks of 7, 28 and 84 days (lifecycle/sales/blocks.py).
# 7: the summary's 7-day window is the weekly table's newest week added up over its regions
#    (lifecycle/sales/week_window.py), and a week's first copy tops its all row up to k
#    (planning._suppress).
PROTECTION = "7"


def key_label(expr: str) -> str:
    """SQL: a label from the data (`expr`: a product line, sku or region) as it stands in a row
    key, where labels are joined by '|' and a rolled-up level reads OTHER.

    A label that could be read as that, a catalogue's product line or sku named OTHER or holding
    a '|', is escaped: a backslash before it, its backslashes doubled, each '|' written as a
    backslash and a '/'.
    Otherwise a product line named OTHER had the key of the week's all row, so the build and the
    guard took two published rows for one, and the guard failed a night on a real catalogue (or
    missed a remainder between them). Every other label stands as it is, so keys and the merges a
    build keeps are unchanged for them. A literal (a roll-up label) is returned as it is."""
    if expr.startswith("'"):
        return expr
    return (
        f"CASE WHEN {expr} = '{OTHER}' OR strpos({expr}, '|') > 0 OR left({expr}, 1) = '\\' "
        f"THEN '\\' || replace(replace({expr}, '\\', '\\\\'), '|', '\\/') ELSE {expr} END"
    )


CATALOGUE_NONE = "ALL"  # the one product line of a shop without a catalogue

# The sales lines placed on local dates :first..:after-1, one row per order line. Whether a line
# is countable is read behind a fence (OFFSET 0) and filtered outside it: PostgreSQL estimates a
# test on an expression (`quantity = trunc(quantity)`, `length(sku) <= 200`) at 0.5% and 33% of
# the rows, so inside the join it took a day's 961 lines for one and rescanned the catalogue
# once per line (0.6 s for the freshness digest of one day of the 200k-order shop, 0.03 s so).
_LINES_SELECT = """
    SELECT sales_date, sku, product_line, region, order_id, customer_id, units, revenue
    FROM (
        SELECT {local_date} AS sales_date,
               CAST(i.{sku} AS text) COLLATE "C" AS sku,
               {product_line} COLLATE "C" AS product_line,
               coalesce(nullif(CAST(o.{region} AS text), ''), '{other}') COLLATE "C" AS region,
               o.{order_id} AS order_id, o.{customer_id} AS customer_id,
               i.{quantity} AS units, i.{quantity} * i.{unit_price} AS revenue,
               ({countable}) AS countable
        FROM {orders} o
        JOIN {items} i ON i.{item_order} = o.{order_id}
        {catalogue_join}
        WHERE o.{status} IN ({statuses})
          AND {placed} >= (CAST(:first AS date)::timestamp AT TIME ZONE :tz)
          AND {placed} < (CAST(:after AS date)::timestamp AT TIME ZONE :tz)
          AND {sold}
        OFFSET 0
    ) line
    WHERE countable
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
) ON COMMIT DROP;
CREATE INDEX IF NOT EXISTS sales_assign_rows ON pg_temp.sales_assign (part, row_key)
""")


def lines_select(src: Source, catalogue) -> str:
    """SELECT of the sales lines placed on local dates :first..:after-1 (binds :tz too)."""
    o, i = src.o, src.i
    if catalogue is None:
        product_line, join = f"'{CATALOGUE_NONE}'", ""
    else:
        product_line = f"coalesce(p.product_line, '{UNLISTED}')"
        join = f"LEFT JOIN ({one_line_per_sku(catalogue)}) p ON p.sku = CAST(i.{i['sku']} AS text)"
    return _LINES_SELECT.format(
        placed=f"o.{o['placed_at']}",
        local_date=src.local_date(),
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
        countable=src.countable(),
        sold=src.sold(),
        other=OTHER,
    )


def load_lines(conn: Connection, src: Source, catalogue, first, after) -> int:
    """Fills pg_temp.sales_lines with the sales lines placed on first..after-1 (local dates)."""
    sql = _LINES_SQL.format(lines=lines_select(src, catalogue))
    rows = conn.execute(sa.text(sql), {"tz": src.tz, "first": first, "after": after}).rowcount
    conn.execute(sa.text("CREATE INDEX ON pg_temp.sales_lines (line_id)"))
    conn.execute(sa.text("ANALYZE pg_temp.sales_lines"))
    for statement in _ASSIGN_TABLE.text.split(";"):
        conn.execute(sa.text(statement))
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
        """SQL: the key of a line's row at `level` (on a published row: of that row)."""
        labels = (key_label(e) for e in (level.product_line, level.sku, level.region))
        return f"concat_ws('|', {self.period}, {', '.join(labels)})"


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


def assign(
    conn: Connection,
    part: Partition,
    k: int,
    forbidden: set[str],
    redo: bool = False,
) -> None:
    """Counts each line of `part`'s span in its finest cell that covers at least k customers
    and is not forbidden; a line with no such cell, not even at the top, is withheld.

    A line whose order names no customer (a guest checkout) counts its units and no customer, as
    in the daily table: counted as a customer of its own, NULL made a cell of k-1 buyers and some
    guests publish, with k-1 in its `customers` column (the guard's check failed the night). Nor
    does a customer with a sale and a return in the cell (source.counted_customers).

    One statement for all levels: each level's candidates are the lines the levels below did not
    place, carried from CTE to CTE, so no level looks its lines up in the assignment again.
    With `redo`, only the lines of pg_temp.sales_redo are assigned again (`reassign`)."""
    source = f"SELECT * FROM pg_temp.sales_lines WHERE {part.span}"
    if not redo:
        conn.execute(sa.text("DELETE FROM pg_temp.sales_assign WHERE part = :p"), {"p": part.name})
    else:
        conn.execute(
            sa.text("""DELETE FROM pg_temp.sales_assign a USING pg_temp.sales_redo r
                WHERE a.part = :p AND a.line_id = r.line_id"""),
            {"p": part.name},
        )
        source = "SELECT l.* FROM pg_temp.sales_lines l JOIN pg_temp.sales_redo USING (line_id)"
    ctes = [f"r0 AS MATERIALIZED ({source})"]
    for n, level in enumerate(part.levels):
        ctes += [
            f"""c{n} AS MATERIALIZED (
                SELECT line_id, customer_id, units, ({part.key(level)}) COLLATE "C" AS row_key
                FROM r{n} WHERE {level.eligible})""",
            f"""p{n} AS MATERIALIZED (
                SELECT line_id, row_key FROM c{n} JOIN (
                    SELECT row_key FROM (
                        SELECT row_key, customer_id FROM c{n} GROUP BY row_key, customer_id
                        HAVING {counts_toward_k()}) d
                    GROUP BY row_key HAVING count(customer_id) >= :k
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


# The (partition, line, row) triples a re-assignment changed, both the old and the new ones.
MOVED_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS sales_moved (
    part text NOT NULL, line_id bigint NOT NULL, row_key text COLLATE "C" NOT NULL
) ON COMMIT DROP
"""
# The lines to assign again after some rows were merged: every line of a period whose merged row
# is at the top level (it crosses product lines), and of a period and product line whose merged
# row is below it, with the lines of that period at the top level or withheld (they and the
# product line's lines moving up make the top row: its candidates are all there, and a line of
# another product line assigned again from among them alone cannot reach a lower row it did not
# reach with all of its row's lines). Other lines keep their rows: a row below the top never
# spans two product lines, and a cell never spans two periods.
_REDO = """
CREATE TEMP TABLE sales_redo ON COMMIT DROP AS
SELECT l.line_id FROM pg_temp.sales_lines l
LEFT JOIN pg_temp.sales_assign a ON a.part = :p AND a.line_id = l.line_id
WHERE ({span}) AND (
    CAST({period} AS text) = ANY(CAST(:whole AS text[]))
    OR (CAST({period} AS text), l.product_line) IN (
        SELECT * FROM unnest(CAST(:periods AS text[]), CAST(:lines AS text[])))
    OR (CAST({period} AS text) = ANY(CAST(:periods AS text[]))
        AND (a.line_id IS NULL OR a.level = :top)))
"""
# Each merged row's level, product line and period, from the lines it holds now.
_MERGED = """
SELECT DISTINCT a.row_key, a.level, l.product_line, CAST({period} AS text)
FROM pg_temp.sales_assign a JOIN pg_temp.sales_lines l USING (line_id)
WHERE a.part = :p AND a.row_key = ANY(CAST(:keys AS text[]))
"""
_BEFORE = """
CREATE TEMP TABLE sales_before ON COMMIT DROP AS
SELECT a.line_id, a.row_key FROM pg_temp.sales_assign a JOIN pg_temp.sales_redo USING (line_id)
WHERE a.part = :p
"""
# A line of the re-assigned periods whose row changed (or that was withheld, or is no longer),
# once under its old row and once under its new one.
_MOVED = """
INSERT INTO pg_temp.sales_moved (part, line_id, row_key)
SELECT :p, d.line_id, v.row_key FROM (
    SELECT r.line_id, b.row_key AS old, a.row_key AS new
    FROM pg_temp.sales_redo r
    LEFT JOIN pg_temp.sales_before b USING (line_id)
    LEFT JOIN pg_temp.sales_assign a ON a.part = :p AND a.line_id = r.line_id
    WHERE b.row_key IS DISTINCT FROM a.row_key
) d CROSS JOIN LATERAL (VALUES (d.old), (d.new)) v(row_key) WHERE v.row_key IS NOT NULL
"""


def _redo(conn: Connection, part: Partition, merged: set[str]) -> None:
    """pg_temp.sales_redo: the lines a merge of the rows `merged` of `part` can move (_REDO)."""
    top = len(part.levels) - 1
    whole, pairs, known = set(), set(), set()
    sql = sa.text(_MERGED.format(period=part.period))
    for key, level, line, period in conn.execute(sql, {"p": part.name, "keys": sorted(merged)}):
        known.add(key)
        if level == top:
            whole.add(period)
        else:
            pairs.add((period, line))
    whole |= {key.split("|", 1)[0] for key in merged - known}  # not assigned: its whole period
    pairs = sorted(pair for pair in pairs if pair[0] not in whole)
    conn.execute(sa.text("DROP TABLE IF EXISTS pg_temp.sales_redo"))
    conn.execute(
        sa.text(_REDO.format(span=part.span, period=part.period)),
        {
            "p": part.name,
            "top": top,
            "whole": sorted(whole),
            "periods": [period for period, _ in pairs],
            "lines": [line for _, line in pairs],
        },
    )


def reassign(
    conn: Connection, part: Partition, k: int, forbidden: set[str], merged: set[str]
) -> None:
    """Assigns again the lines that merging the rows `merged` (now in `forbidden`) can move
    (`_redo`: their product lines' lines in their periods, and the lines of the top rows of
    those periods) and records in pg_temp.sales_moved every line whose row changed, under its
    old and its new row: what `scope_audit` starts from."""
    conn.execute(sa.text(MOVED_TABLE))
    conn.execute(sa.text("DROP TABLE IF EXISTS pg_temp.sales_before"))
    _redo(conn, part, merged)
    conn.execute(sa.text(_BEFORE), {"p": part.name})
    assign(conn, part, k, forbidden, redo=True)
    conn.execute(sa.text(_MOVED), {"p": part.name})


# What can audit differently after some lines moved: a row's remainder against another partition
# depends only on its own lines, their rows in the other partition and whether those rows lie
# wholly inside one of its rows. So only rows holding a touched line (a moved line, or a line of a
# row that gained or lost one) are audited again (pg_temp.sales_relevant), and the audit reads
# only their lines and every line of any row sharing a line with them (pg_temp.sales_scope), which
# is all that whether a row lies inside them needs. The rest audits as in the last round: clean.
_SCOPE = """
CREATE TEMP TABLE sales_relevant ON COMMIT DROP AS
WITH touched AS (
    SELECT line_id FROM pg_temp.sales_moved
    UNION
    SELECT a.line_id FROM pg_temp.sales_assign a
    JOIN (SELECT DISTINCT part, row_key FROM pg_temp.sales_moved) m USING (part, row_key)
)
SELECT DISTINCT a.part, a.row_key FROM pg_temp.sales_assign a JOIN touched USING (line_id);
CREATE TEMP TABLE sales_scope ON COMMIT DROP AS
WITH near AS (
    SELECT DISTINCT a.line_id FROM pg_temp.sales_assign a
    JOIN pg_temp.sales_relevant USING (part, row_key)
), near_rows AS (
    SELECT DISTINCT a.part, a.row_key FROM pg_temp.sales_assign a JOIN near USING (line_id)
)
SELECT DISTINCT a.line_id FROM pg_temp.sales_assign a JOIN near_rows USING (part, row_key);
TRUNCATE pg_temp.sales_moved
"""


# The product lines of the lines the recorded moves touched (as in _SCOPE): what the exact audit
# reads again (lifecycle.sales.derivable).
_MOVED_PRODUCT_LINES = """
SELECT DISTINCT l.product_line FROM (
    SELECT line_id FROM pg_temp.sales_moved
    UNION
    SELECT a.line_id FROM pg_temp.sales_assign a
    JOIN (SELECT DISTINCT part, row_key FROM pg_temp.sales_moved) m USING (part, row_key)
) touched JOIN pg_temp.sales_lines l USING (line_id)
"""


def moved_product_lines(conn: Connection) -> set[str]:
    """The product lines of every line the re-assignments since the last `scope_audit` moved
    and of every line sharing a row with one, before or after its move."""
    conn.execute(sa.text(MOVED_TABLE))
    return {line for (line,) in conn.execute(sa.text(_MOVED_PRODUCT_LINES))}


def scope_audit(conn: Connection) -> int:
    """Narrows the next `audit(scoped=True)` to the rows the recorded moves can affect; returns
    how many lines it will read."""
    conn.execute(sa.text("DROP TABLE IF EXISTS pg_temp.sales_relevant, pg_temp.sales_scope"))
    conn.execute(sa.text("ANALYZE pg_temp.sales_moved"))
    for statement in _SCOPE.split(";"):
        conn.execute(sa.text(statement))
    conn.execute(sa.text("ANALYZE pg_temp.sales_relevant"))
    return conn.execute(sa.text("SELECT count(*) FROM pg_temp.sales_scope")).scalar_one()


@dataclass(frozen=True)
class Remainder:
    """A row of `outer` minus the rows of `inner` inside it: fewer than k customers are left."""

    outer: str
    outer_key: str
    inner: str
    smallest_inner_key: str
    customers: int
    # The rows of `inner` inside it, smallest first, with their customers: the cells that can be
    # merged to close the remainder.
    partners: tuple[tuple[str, int], ...] = ()

    def partners_to_merge(self, k: int, last: Callable[[str], bool] | None = None) -> list[str]:
        """The smallest partners whose customers, added to the remainder's, reach k: merging
        them closes the remainder unless they share customers (then the next round merges
        more). Merging one a round took 31 rounds on the 1M-order shop, a week a round.
        Partners `last` names are taken after every other, whatever their size: a row whose
        merge withholds its lines rather than moving them up (planning._suppress)."""
        take, customers = [], self.customers
        for key, n in sorted(self.partners, key=lambda p: last is not None and last(p[0])):
            take.append(key)
            customers += n
            if customers >= k:
                break
        return take


# Every line of the audited partitions with its row key in each (k0, k1, ...: NULL where the line
# is in no row of that partition): one pass over the assignment per audit round, so that the
# statements below read one narrow table instead of joining the assignment again.
_WIDE = """
CREATE TEMP TABLE sales_wide ON COMMIT DROP AS
SELECT l.customer_id, l.units, {columns}
FROM pg_temp.sales_lines l {scope} {joins}
"""
# For one partition B (column {b}): each of its rows, and for every partition A audited against
# it, whether the row lies wholly inside one row of A (all its lines in the same A row). One hash
# aggregate per B serves every pair (A, B), where a pair-by-pair audit grouped the lines of B
# once per pair.
_INSIDE = """
CREATE TEMP TABLE sales_inside_{b} ON COMMIT DROP AS
SELECT {b} AS bk, {flags}
FROM pg_temp.sales_wide WHERE {b} IS NOT NULL GROUP BY {b}
"""
_INSIDE_FLAG = "(count({a}) = count(*) AND min({a}) = max({a})) AS in_{a}"
# For one partition A (column {a}) against every partition B of its pairs at once: each line of A
# is `covered` for B when its B row lies wholly inside its A row; an A row is opened for B when
# some of its lines are covered and some are not; the remainder is its uncovered lines, and only
# for opened rows are their distinct customers counted (most rows of a long-tail shop are not
# opened). The partners returned are the B rows inside it, smallest first (customers, then key).
_REMAINDERS = """
WITH cov AS MATERIALIZED (
    SELECT w.customer_id, w.units, w.{a} AS ak, {covered}
    FROM pg_temp.sales_wide w {joins}
    WHERE w.{a} IS NOT NULL AND w.{r}
), opened AS MATERIALIZED (
    SELECT ak, {opened} FROM cov GROUP BY ak HAVING {any_opened}
), kept AS (
    SELECT c.ak, v.b, c.customer_id, {counts} AS counts
    FROM cov c JOIN opened o USING (ak)
    CROSS JOIN LATERAL (VALUES {kept}) v(b, keep) WHERE v.keep
    GROUP BY c.ak, v.b, c.customer_id
), found AS MATERIALIZED (
    SELECT ak, b, count(customer_id) FILTER (WHERE counts) AS customers FROM kept GROUP BY ak, b
    HAVING count(customer_id) FILTER (WHERE counts) < :k
), partners AS (
    SELECT f.ak, f.b, v.bk, {counted} AS customers
    FROM found f JOIN cov c USING (ak)
    CROSS JOIN LATERAL (VALUES {partner}) v(b, covered, bk)
    WHERE v.b = f.b AND v.covered GROUP BY f.ak, f.b, v.bk
)
SELECT f.b, f.ak, f.customers, p.keys, p.sizes
FROM found f
LEFT JOIN (SELECT ak, b, array_agg(bk ORDER BY customers, bk) AS keys,
                  array_agg(customers ORDER BY customers, bk) AS sizes
           FROM partners GROUP BY ak, b) p USING (ak, b)
ORDER BY f.b, f.ak
"""


def audit(
    conn: Connection,
    parts: list[str],
    k: int,
    involving: set[str] | None = None,
    scoped: bool = False,
) -> list[Remainder]:
    """Every row of one partition that, minus the rows of another it contains, leaves lines of
    fewer than k customers (a figure anyone could derive by subtraction), over every ordered pair
    of `parts`, or only the pairs with a partition of `involving` in them.

    One statement per partition B finds which of its rows lie inside a row of each A, and one per
    partition A audits it against all its Bs at once: 2n statements for n partitions, where a
    pair-by-pair audit ran n(n-1), each grouping the lines again. `scoped`: only the rows
    `scope_audit` kept, after a round of merges (the others audit as they did before it).
    Guests' lines are counted in no remainder's customers, so a remainder of k-1 buyers and some
    guests is found (a remainder of guests alone, with sales and no customer, is found too); nor
    is a customer with a sale and a return in the remainder (source.counted_customers)."""
    pairs = [
        (a, b)
        for a, outer in enumerate(parts)
        for b, inner in enumerate(parts)
        if outer != inner and (involving is None or {outer, inner} & involving)
    ]
    columns = ", ".join(f"a{n}.row_key AS k{n}" for n in range(len(parts)))
    if scoped:
        relevant = "coalesce(a{n}.row_key IN (SELECT row_key FROM pg_temp.sales_relevant r WHERE r.part = :p{n}), false)"
        columns += ", " + ", ".join(f"{relevant.format(n=n)} AS r{n}" for n in range(len(parts)))
    else:
        columns += ", " + ", ".join(f"true AS r{n}" for n in range(len(parts)))
    scope = "JOIN pg_temp.sales_scope s ON s.line_id = l.line_id" if scoped else ""
    joins = " ".join(
        f"LEFT JOIN pg_temp.sales_assign a{n} ON a{n}.part = :p{n} AND a{n}.line_id = l.line_id"
        for n in range(len(parts))
    )
    names = {f"p{n}": name for n, name in enumerate(parts)}
    conn.execute(sa.text("DROP TABLE IF EXISTS pg_temp.sales_wide"))
    conn.execute(sa.text(_WIDE.format(columns=columns, joins=joins, scope=scope)), names)
    conn.execute(sa.text("ANALYZE pg_temp.sales_wide"))  # temp tables get no autovacuum statistics
    for b in sorted({b for _, b in pairs}):
        flags = ", ".join(_INSIDE_FLAG.format(a=f"k{a}") for a, bb in pairs if bb == b)
        conn.execute(sa.text(f"DROP TABLE IF EXISTS pg_temp.sales_inside_k{b}"))
        conn.execute(sa.text(_INSIDE.format(b=f"k{b}", flags=flags)))
    found: list[Remainder] = []
    for a in sorted({a for a, _ in pairs}):
        bs = [b for aa, b in pairs if aa == a]
        sql = _REMAINDERS.format(
            a=f"k{a}",
            r=f"r{a}",
            covered=", ".join(
                f"w.k{b} AS bk{b}, coalesce(i{b}.in_k{a}, false) AS c{b}" for b in bs
            ),
            joins=" ".join(
                f"LEFT JOIN pg_temp.sales_inside_k{b} i{b} ON i{b}.bk = w.k{b}" for b in bs
            ),
            opened=", ".join(f"bool_or(c{b}) AND NOT bool_and(c{b}) AS o{b}" for b in bs),
            any_opened=" OR ".join(f"(bool_or(c{b}) AND NOT bool_and(c{b}))" for b in bs),
            kept=", ".join(f"({b}, o.o{b} AND NOT c.c{b})" for b in bs),
            partner=", ".join(f"({b}, c.c{b}, c.bk{b})" for b in bs),
            counts=counts_toward_k("c.units"),
            counted=counted_customers("c.customer_id", "c.units"),
        )
        for b, ak, n, keys, sizes in conn.execute(sa.text(sql), {"k": k}):
            partners = tuple(zip(keys or (), sizes or (), strict=True))
            smallest = partners[0][0] if partners else None
            found.append(Remainder(parts[a], ak, parts[b], smallest, n, partners))
    return found


DAILY = "sales_volume_daily"
# The published daily table as a partition: a line counts in its own region's row, else in its
# sku's OTHER row of the day, else it is withheld.
_DAILY_ASSIGN = sa.text(f"""
INSERT INTO pg_temp.sales_assign (part, line_id, row_key, level)
SELECT '{DAILY}', l.line_id,
       concat_ws('|', l.sales_date, {key_label("l.sku")}, coalesce({key_label("own.region")}, other.region)),
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


def assign_published(conn: Connection, part: Partition, table: str) -> None:
    """Maps the lines of `part`'s span to the finest published row of `table` that matches them:
    how a reader of the published table can place each sale. One statement: each level's key is
    looked up in the published keys, and the finest match wins. A published row's key is made
    as its level makes a line's (`Partition.key` over the row's columns), so a row rolled up to
    OTHER and a row of a product line or sku named OTHER are two rows here as they are to a
    reader."""
    conn.execute(sa.text("DELETE FROM pg_temp.sales_assign WHERE part = :p"), {"p": part.name})
    keys = ", ".join(
        f'CASE WHEN {level.eligible} THEN ({part.key(level)}) COLLATE "C" END AS k{n}'
        for n, level in enumerate(part.levels)
    )
    joins = " ".join(
        f"LEFT JOIN published p{n} ON p{n}.row_key = c.k{n}" for n in range(len(part.levels))
    )
    found = ", ".join(f"p{n}.row_key" for n in range(len(part.levels)))
    depth = " ".join(f"WHEN p{n}.row_key IS NOT NULL THEN {n}" for n in range(len(part.levels)))
    published = " UNION ALL ".join(
        f'SELECT ({part.key(level)}) COLLATE "C" AS row_key FROM {table} t '
        f"WHERE t.level = '{level.name}'"
        for level in part.levels
    )
    conn.execute(
        sa.text(f"""
        WITH published AS MATERIALIZED (
            SELECT DISTINCT row_key FROM ({published}) p
        ), candidates AS MATERIALIZED (
            SELECT l.line_id, {keys} FROM pg_temp.sales_lines l WHERE {part.span}
        )
        INSERT INTO pg_temp.sales_assign (part, line_id, row_key, level)
        SELECT :p, c.line_id, coalesce({found}), CASE {depth} END
        FROM candidates c {joins}
        WHERE coalesce({found}) IS NOT NULL
        """),
        {"p": part.name},
    )
