"""Whether a planning table is already up to date: a night with nothing new rebuilds nothing.

Both planning tables end on the Sunday of the last complete ISO week (planning.window_end), so on
the six nights after it they read exactly the same sales lines, and a table is left as it is unless
one of them, or something else its figures depend on, changed. Those are the sales lines of its
span, the rules it was built under (Source.signature, k, rollup.PROTECTION), the catalogue, the
daily table it is merged against, and for weekly_demand the summary published before it. All of
these are summed up in one hash, read in the build's own transaction, at a cost of one day's
orders: the daily table's per-day build times over the span before its last day (the nightly
refresh rebuilds such a day only when the change capture saw one of its orders change,
lifecycle/sales/capture.py, or when its rules change), a digest of the last day's own sales lines
(on the night it became complete that day was built as the newest one, which the refresh rebuilds
every night, so its build time is not used), the catalogue's content, and the upstream table's own
hash. A change the capture has recorded for a day of the span but the daily refresh has not
consumed yet makes the table stale without a hash; new orders of the days after the span do not.

Each build also keeps the cells it merged against differencing. A rebuild for the same Sunday (a
late order or correction in the span) starts merged where the last one ended, under the same
rules: it then settles in a round or two where a cold build finds them again in five to seven. A
build for a new Sunday starts the summary from last week's merges in the blocks it still shows
(planning._summary_merges_to_start_from) and the weekly table from last week's merges in the
weeks both show (planning._weekly_merges_to_start_from).
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.policy import Policy
from lifecycle.sales import rollup
from lifecycle.sales.catalogue import one_line_per_sku
from lifecycle.sales.daily import HOUR_DAYS
from lifecycle.sales.source import Source

_PENDING = sa.text(f"""
    SELECT EXISTS (
        SELECT 1 FROM lifecycle.sales_changes g {HOUR_DAYS}
        WHERE g.hour IS NULL OR (v.day >= :first AND v.day < :after))
""")
_DAILY_BUILDS = sa.text("""
    SELECT coalesce(string_agg(concat_ws('@', sales_date, built_at), ',' ORDER BY sales_date), '')
    FROM lifecycle.sales_days WHERE sales_date >= :first AND sales_date < :day
""")
_LAST_DAY_DIGEST = """
    SELECT md5(coalesce(string_agg(concat_ws('|', sku, product_line, region, order_id,
                                             customer_id, units, revenue), ','
                                   ORDER BY order_id, sku, units, revenue, region), ''))
    FROM ({lines}) line
"""
# The catalogue as the builds read it (one product line per sku), so that the order in which a
# catalogue lists a sku twice cannot change the hash.
_CATALOGUE = (
    "SELECT md5(coalesce(string_agg(sku || '|' || product_line, ',' ORDER BY sku), '')) "
    "FROM ({catalogue}) c"
)
_STORED = sa.text("""
    SELECT signature FROM lifecycle.planning_builds WHERE table_name = :t AND as_of_date = :day
""")
_RECORD = sa.text("""
    INSERT INTO lifecycle.planning_builds (table_name, as_of_date, signature, built_at,
                                           merged_cells, merged_under)
    VALUES (:t, :day, :sig, now(), CAST(:merged AS text[]), :rules)
    ON CONFLICT (table_name) DO UPDATE SET as_of_date = EXCLUDED.as_of_date,
        signature = EXCLUDED.signature, built_at = EXCLUDED.built_at,
        merged_cells = EXCLUDED.merged_cells, merged_under = EXCLUDED.merged_under
""")
_MERGED = sa.text("""
    SELECT merged_cells FROM lifecycle.planning_builds
    WHERE table_name = :t AND as_of_date = :day AND merged_under = :rules
""")
_ANY = sa.text("SELECT signature FROM lifecycle.planning_builds WHERE table_name = :t")
_DAY = sa.text("SELECT as_of_date FROM lifecycle.planning_builds WHERE table_name = :t")


def source_signature(
    conn: Connection, policy: Policy, first: date, day: date, upstream: str | None = None
) -> str | None:
    """A hash of everything the figures of a table spanning first..day depend on, or None when a
    recorded change to a day of that span is not yet in the daily table (then nothing can be
    vouched for)."""
    after = day + timedelta(days=1)
    src = Source(policy)
    if conn.execute(_PENDING, {"first": first, "after": after, "tz": src.tz}).scalar_one():
        return None
    digest = sa.text(_LAST_DAY_DIGEST.format(lines=rollup.lines_select(src, policy.raw.catalogue)))
    parts = [
        merge_rules(src),
        conn.execute(_DAILY_BUILDS, {"first": first, "day": day}).scalar_one(),
        conn.execute(digest, {"tz": src.tz, "first": day, "after": after}).scalar_one(),
    ]
    catalogue = policy.raw.catalogue
    if catalogue is not None:
        sql = _CATALOGUE.format(catalogue=one_line_per_sku(catalogue))
        parts.append(conn.execute(sa.text(sql)).scalar_one())
    if upstream is not None:
        parts.append(conn.execute(_ANY, {"t": upstream}).scalar() or "none")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def is_current(conn: Connection, table: str, day: date, signature: str | None) -> bool:
    """True when `table` was last built for `day` from exactly this source."""
    if signature is None:
        return False
    return conn.execute(_STORED, {"t": table, "day": day}).scalar() == signature


def built_for(conn: Connection, table: str) -> date | None:
    """The Sunday `table` was last built for (None: never built)."""
    return conn.execute(_DAY, {"t": table}).scalar()


def merge_rules(src: Source) -> str:
    """The rules a build follows besides its data: the protection and the source's rules (k,
    time zone, mapping). The first part of every source signature; merges made under other rules
    are not carried into a rebuild."""
    return f"protection {rollup.PROTECTION}\n{src.signature}"


def carried_merges(conn: Connection, table: str, day: date, rules: str) -> set[str]:
    """The cells the last build of `table` merged, when it was built for the same Sunday under
    the same rules; else none. Starting a rebuild from them is safe whatever they are: a merge
    only moves a cell up, and the build's audits run until nothing is left to find."""
    found = conn.execute(_MERGED, {"t": table, "day": day, "rules": rules}).scalar()
    return set(found or ())


def record(
    conn: Connection, table: str, day: date, signature: str | None, merged: set[str], rules: str
) -> None:
    """Notes what `table` was just built from (no hash: the next build will not skip), and the
    cells it merged under `rules`, for a rebuild in the same week to start from."""
    params = {"t": table, "day": day, "sig": signature or "stale", "rules": rules}
    conn.execute(_RECORD, params | {"merged": sorted(merged)})
