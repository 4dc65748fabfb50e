"""The shop's catalogue as the sales builds read it: at most one product line per sku.

A shop maps its own catalogue (raw.catalogue), often a view over its product tables, and nothing
makes such a table list each sku once. Joined as it stands, a sku listed twice would put each of
its sales lines into the span twice: the planning tables would count its units twice, and the DP
release would publish the sku twice with noise scaled for once, so a customer's units in it would
move the release by twice the bound its ε was computed for. Every build therefore reads the
catalogue through `one_line_per_sku`:

- a sku listed under one product line, however many times, keeps it;
- a sku listed under several product lines, or under none (NULL, blank, or a name longer than
  a published row can be keyed by, MAX_LABEL_CHARS), belongs to UNLISTED, where a sku the
  catalogue does not list is: its units count once, and no line is guessed;
- a row without a sku, or with one longer than that (no line can count under it: `Source.countable`),
  is ignored.

`ambiguous_skus` counts the skus listed under several product lines and names a few (catalogue
codes, never a person) for the build's metadata and log, with the fix; `skus_not_listed` does the
same for the skus sold that the catalogue does not list at all (under UNLISTED in the planning
tables, in no DP release).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.policy.catalogue import Catalogue
from lifecycle.sales.source import MAX_LABEL_CHARS

UNLISTED = "UNLISTED"  # the product line of a sku the catalogue does not list, or not clearly
# The analytics columns the sales builds fill with the catalogue's product-line labels (or a
# roll-up label: OTHER, UNLISTED, ALL): the leak guard compares their values whole, not word by
# word (lifecycle.guard.raw_values.LABEL_COLUMNS says why).
PRODUCT_LINE_COLUMNS = (
    ("analytics.weekly_demand", "product_line"),
    ("analytics.product_line_summary", "product_line"),
    ("analytics.sales_units_dp", "product_line"),
    ("analytics.sales_units_dp_lines", "product_line"),
)
EXAMPLES = 5  # ambiguous skus named in a build's metadata

_LISTED = """
    SELECT CAST({sku} AS text) AS sku,
           CASE WHEN btrim(CAST({line} AS text)) <> '' AND length(CAST({line} AS text)) <= {most}
                THEN CAST({line} AS text) END AS product_line
    FROM {table}
    WHERE {sku} IS NOT NULL AND length(CAST({sku} AS text)) <= {most}
"""
_ONE_LINE_PER_SKU = """
    SELECT sku, CASE WHEN count(DISTINCT product_line) = 1 THEN min(product_line)
                     ELSE '{unlisted}' END AS product_line
    FROM ({listed}) listed
    GROUP BY sku
"""
_AMBIGUOUS = """
    SELECT count(*), (array_agg(sku ORDER BY sku))[1:{examples}]
    FROM (SELECT sku FROM ({listed}) listed GROUP BY sku
          HAVING count(DISTINCT product_line) > 1) several
"""


def _listed(catalogue: Catalogue) -> str:
    """SELECT of every (sku, product_line) row of the catalogue that names a sku, as text."""
    return _LISTED.format(
        sku=catalogue.col("sku"),
        line=catalogue.col("product_line"),
        table=catalogue.sql,
        most=MAX_LABEL_CHARS,
    )


def one_line_per_sku(catalogue: Catalogue) -> str:
    """SELECT of (sku, product_line), one row per sku the catalogue lists (see the module)."""
    return _ONE_LINE_PER_SKU.format(unlisted=UNLISTED, listed=_listed(catalogue))


@dataclass(frozen=True)
class AmbiguousSkus:
    """Skus the catalogue lists under more than one product line: how many, and a few codes."""

    table: str
    count: int = 0
    examples: tuple[str, ...] = ()

    def metadata(self) -> dict[str, object]:
        """The count, for a build's Dagster metadata (nothing without a catalogue)."""
        return {"catalogue_skus_under_several_lines": self.count} if self.table else {}

    def warning(self) -> str | None:
        """One line saying what was found, what the builds did, and the fix; None when clean."""
        if not self.count:
            return None
        named = ", ".join(repr(sku) for sku in self.examples)
        more = (
            f" and {self.count - len(self.examples)} more"
            if self.count > len(self.examples)
            else ""
        )
        return (
            f"raw.catalogue {self.table}: {self.count} sku(s) listed under more than one product "
            f"line ({named}{more}); their sales count once, under {UNLISTED}, until the catalogue "
            "lists each sku under one product line"
        )


# Skus of the loaded sales lines (pg_temp.sales_lines) that the catalogue does not list.
_NOT_LISTED = """
    SELECT count(DISTINCT l.sku), coalesce(sum(l.units), 0),
           (array_agg(DISTINCT l.sku ORDER BY l.sku))[1:{examples}]
    FROM pg_temp.sales_lines l
    WHERE NOT EXISTS (SELECT FROM ({listed}) c WHERE c.sku = l.sku)
      AND (CAST(:first AS date) IS NULL OR l.sales_date >= :first)
"""


@dataclass(frozen=True)
class SkusNotListed:
    """Skus sold in a build's span that the catalogue does not list: how many, their units, a few
    codes, and what the build did with them (`outcome`, for the log line)."""

    outcome: str = ""
    count: int = 0
    units: int = 0
    examples: tuple[str, ...] = ()

    def metadata(self) -> dict[str, object]:
        """The counts, for a build's Dagster metadata (nothing without a catalogue)."""
        if not self.outcome:
            return {}
        return {
            "skus_sold_not_in_catalogue": self.count,
            "units_of_skus_not_in_catalogue": self.units,
        }

    def warning(self) -> str | None:
        """One line saying what was found, what the build did, and the fix; None when clean."""
        if not self.count:
            return None
        named = ", ".join(repr(sku) for sku in self.examples)
        more = f" and {self.count - len(self.examples)} more" if self.count > EXAMPLES else ""
        return (
            f"raw.catalogue: {self.count} sku(s) sold are not in the catalogue ({named}{more}): "
            f"their {self.units} unit(s) {self.outcome} until the catalogue lists them (a code "
            "that differs in case or spaces from the order lines' is another sku)"
        )


def skus_not_listed(
    conn: Connection, catalogue: Catalogue | None, outcome: str, first: date | None = None
) -> SkusNotListed:
    """The skus of pg_temp.sales_lines (from `first` on, when given: the lines read before it
    belong to an earlier publication, not to the build's span) that `catalogue` does not list
    (none without one)."""
    if catalogue is None:
        return SkusNotListed()
    sql = _NOT_LISTED.format(listed=_listed(catalogue), examples=EXAMPLES)
    count, units, examples = conn.execute(sa.text(sql), {"first": first}).one()
    return SkusNotListed(outcome, int(count), int(units), tuple(examples or ()))


def ambiguous_skus(conn: Connection, catalogue: Catalogue | None) -> AmbiguousSkus:
    """The skus `catalogue` lists under more than one product line (none without a catalogue)."""
    if catalogue is None:
        return AmbiguousSkus(table="")
    sql = _AMBIGUOUS.format(listed=_listed(catalogue), examples=EXAMPLES)
    count, examples = conn.execute(sa.text(sql)).one()
    return AmbiguousSkus(catalogue.table, int(count), tuple(examples or ()))
