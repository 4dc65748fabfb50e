"""Differentially private 28-day units per sku (`analytics.mechanism: differential_privacy`).

A planner sums units per sku over 28 days; releasing the 28-day total itself draws noise once,
where summing four weekly releases adds four noises (twice the spread for the same ε per week).
Periods are fixed blocks of four ISO weeks counted from EPOCH, so no two releases overlap and each
customer's sale is in exactly one period: the ε of a period is the ε its customers spend. The
latest released period is the last complete one, so it ends up to three weeks before the last
complete week (the price of not composing overlapping windows).

Every catalogue sku gets a row every released period (a public key set: no partition is selected
from the data, so a row's presence says nothing). Each customer's units in a period are clipped in
SQL (lifecycle/policy/privacy.py), the clipped counts per sku leave the database as one small
vector, OpenDP's Laplace mechanism adds noise calibrated to the clip and ε, and the released
counts are rounded to non-negative integers (post-processing keeps the guarantee).

A release is stored: a re-run of a period whose clipped source is unchanged releases nothing and
draws no new noise. A period whose source changed (late data) is released again and spends ε
again; every ε spent is in lifecycle.dp_ledger. A re-release that would exceed the period's budget
is refused (the old release stays), marked, and fails the check `dp_release_within_budget`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.checks import CheckResult, Finding
from lifecycle.policy import Policy
from lifecycle.policy.privacy import DifferentialPrivacy
from lifecycle.sales import rollup
from lifecycle.sales.blocks import EPOCH  # periods are blocks of PERIOD_WEEKS weeks from it
from lifecycle.sales.catalogue import (
    AmbiguousSkus,
    SkusNotListed,
    ambiguous_skus,
    one_line_per_sku,
    skus_not_listed,
)
from lifecycle.sales.daily import LOCK_KEY, SalesError, build_transaction, last_complete_day
from lifecycle.sales.source import Source
from lifecycle.sales.uncounted import (
    LinesWithoutCustomer,
    UncountedLines,
    lines_without_customer,
    uncounted_lines,
)
from lifecycle.sales.utility import DpUtility, measure_dp_utility

if TYPE_CHECKING:
    import opendp.prelude as dp

PERIOD_WEEKS = 4  # a release covers 28 days, the total a planner sums per sku
PERIODS = 3  # complete periods kept released: the last 84 days up to the last complete period

TABLE = "analytics.sales_units_dp"
LINES_TABLE = "analytics.sales_units_dp_lines"  # the same release summed per product line


def laplace(bounds: DifferentialPrivacy) -> dp.Measurement:
    """OpenDP's Laplace mechanism on a vector of counts one customer moves by at most the bound.

    OpenDP is imported here, not with the module: it costs ~0.6 s at every process start
    (definitions, code server, run workers) and only a differentially private release uses it.
    """
    import opendp.prelude as dp

    dp.enable_features("contrib")
    bound = bounds.max_units_per_customer_per_period
    space = dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int)
    return dp.m.make_laplace(*space, scale=bound / bounds.epsilon_per_release)


def privacy_loss(bounds: DifferentialPrivacy) -> float:
    """ε of one release, as OpenDP's privacy map states it for the contribution bound."""
    return float(laplace(bounds).map(bounds.max_units_per_customer_per_period))


# Clipped counts of one period for every catalogue sku: a customer's units per sku are capped, then
# their skus (in a fixed pseudo-random order) count until the period's cap is used up. A sku's net
# units below zero (a return booked as a negative line) count as none: a negative cell let the
# customer's later skus count past the period's cap, so one person moved the release by more than
# the bound its noise was scaled for. A line whose order names no customer counts for nobody
# (lifecycle/sales/uncounted.py, `lines_without_customer`): no person's cap can bound it.
_CLIPPED = sa.text("""
WITH per_cell AS (
    SELECT customer_id, sku, greatest(0, least(sum(units), :cell_cap)) AS units
    FROM pg_temp.sales_lines
    WHERE sales_date >= :start AND sales_date < :start + 7 * :weeks AND customer_id IS NOT NULL
    GROUP BY customer_id, sku
), clipped AS (
    SELECT sku, greatest(0, least(units, :period_cap - coalesce(sum(units) OVER (
               PARTITION BY customer_id ORDER BY md5(customer_id::text || sku)
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0))) AS units
    FROM per_cell
)
SELECT c.sku, c.product_line, coalesce(sum(k.units), 0)::bigint
FROM pg_temp.dp_catalogue c LEFT JOIN clipped k USING (sku)
GROUP BY c.sku, c.product_line ORDER BY c.sku
""")
_RELEASE = sa.text(
    "SELECT source_hash FROM lifecycle.dp_releases WHERE table_name = :t AND period_start = :w"
)
_SPENT = sa.text(
    "SELECT coalesce(sum(epsilon), 0) FROM lifecycle.dp_ledger "
    "WHERE table_name = :t AND period_start = :w"
)


@dataclass
class DpRelease:
    """What one run released, kept and refused, and the ε it spent: counts and periods only."""

    mechanism: str
    epsilon_per_release: float = 0.0
    budget_per_period: float = 0.0
    released: list[date] = field(default_factory=list)
    kept: list[date] = field(default_factory=list)
    refused: list[date] = field(default_factory=list)
    epsilon_spent_now: float = 0.0
    spent_per_period: dict[str, float] = field(default_factory=dict)
    rows: int = 0
    seconds: float = 0.0
    catalogue: AmbiguousSkus = AmbiguousSkus(table="")  # skus it lists under several lines
    uncounted: UncountedLines = UncountedLines(table="")  # lines of its periods left out
    without_customer: LinesWithoutCustomer = LinesWithoutCustomer(table="")  # nobody's lines
    not_in_catalogue: SkusNotListed = SkusNotListed()  # sold, so never released
    utility: DpUtility | None = None  # the latest period as released, against its true units

    def metadata(self) -> dict[str, object]:
        """ε spent and left per 28-day period, for the Dagster UI."""
        return {
            "mechanism": self.mechanism,
            "period_days": 7 * PERIOD_WEEKS,
            "epsilon_per_release": self.epsilon_per_release,
            "epsilon_budget_per_period": self.budget_per_period,
            "periods_released": [d.isoformat() for d in self.released],
            "periods_kept_without_new_noise": len(self.kept),
            "periods_refused_over_budget": [d.isoformat() for d in self.refused],
            "epsilon_spent_this_run": round(self.epsilon_spent_now, 6),
            "epsilon_spent_per_period": self.spent_per_period,
            "epsilon_left_per_period": {
                w: round(self.budget_per_period - s, 6) for w, s in self.spent_per_period.items()
            },
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            **self.catalogue.metadata(),
            **self.uncounted.metadata(),
            **self.without_customer.metadata(),
            **self.not_in_catalogue.metadata(),
            **(self.utility.metadata() if self.utility else {}),
        }


def load_catalogue(conn: Connection, policy: Policy) -> None:
    """pg_temp.dp_catalogue: the public key set, one product line per catalogue sku.

    A catalogue that lists no sku (a mapping to an empty table, or to one whose codes are all
    too long to key a row) is refused: the release would publish no row while its sales exist,
    and spend the period's ε on nothing, so the first release after the catalogue is filled
    would be a re-release, leaving no budget for late data."""
    catalogue = policy.raw.catalogue
    if catalogue is None:
        raise SalesError(
            f"{policy.path.name}: analytics.mechanism: differential_privacy needs the public list of "
            "skus: map raw.catalogue (reference table shop.products)"
        )
    listed = conn.execute(
        sa.text(f"""
        CREATE TEMP TABLE dp_catalogue ON COMMIT DROP AS
        SELECT sku COLLATE "C" AS sku, product_line COLLATE "C" AS product_line
        FROM ({one_line_per_sku(catalogue)}) c
    """)
    ).rowcount
    if not listed:
        raise SalesError(
            f"{policy.path.name}: raw.catalogue {catalogue.table} lists no sku, so a differentially "
            "private release would publish nothing and spend its ε; nothing was released or spent: "
            "fill the catalogue, or map raw.catalogue to the table that holds it"
        )


def periods(day: date) -> list[date]:
    """First Mondays of the PERIODS complete periods that end on or before `day`."""
    after = (day - EPOCH).days // (7 * PERIOD_WEEKS)  # the period holding `day`, or the next one
    if (day - EPOCH).days % (7 * PERIOD_WEEKS) == 7 * PERIOD_WEEKS - 1:
        after += 1  # `day` ends its period: that period is complete
    return [EPOCH + timedelta(weeks=PERIOD_WEEKS * n) for n in range(after - PERIODS, after)]


def clipped_counts(
    conn: Connection, start: date, bounds: DifferentialPrivacy
) -> list[tuple[str, str, int]]:
    """(sku, product line, clipped units) of every catalogue sku in the period from `start`, from
    pg_temp.sales_lines: each customer moves these by at most the period's cap in total."""
    params = {
        "start": start,
        "weeks": PERIOD_WEEKS,
        "cell_cap": bounds.max_units_per_customer_per_cell,
        "period_cap": bounds.max_units_per_customer_per_period,
    }
    return [(sku, line, int(units)) for sku, line, units in conn.execute(_CLIPPED, params)]


def line_sums(counts: list[tuple[str, str, int]], noisy: list[int]) -> dict[str, int]:
    """Each product line's sum of its skus' noisy counts, before any is floored at zero.

    Post-processing of the release: it spends no ε. Summing the floored sku counts instead adds
    the positive half of every unsold sku's noise, a bias that grows with the catalogue (a line of
    200 unsold skus gains about 100 × the noise scale); this sum's noise averages out instead."""
    sums: dict[str, int] = {}
    for (_, line, _), n in zip(counts, noisy, strict=True):
        sums[line] = sums.get(line, 0) + n
    return sums


def _publish_period(
    conn: Connection, start: date, counts: list[tuple[str, str, int]], noisy: list[int]
) -> None:
    """Replaces the period's released rows: per sku and per product line, each a non-negative
    integer (the floor is post-processing)."""
    for table in (TABLE, LINES_TABLE):
        conn.execute(sa.text(f"DELETE FROM {table} WHERE period_start = :w"), {"w": start})
    if not counts:
        return
    conn.execute(
        sa.text(f"INSERT INTO {TABLE} VALUES (:w, :line, :sku, :units)"),
        [
            {"w": start, "line": line, "sku": sku, "units": max(0, n)}
            for (sku, line, _), n in zip(counts, noisy, strict=True)
        ],
    )
    conn.execute(
        sa.text(f"INSERT INTO {LINES_TABLE} VALUES (:w, :line, :units)"),
        [
            {"w": start, "line": line, "units": max(0, n)}
            for line, n in sorted(line_sums(counts, noisy).items())
        ],
    )


def _release_period(
    conn: Connection, start: date, bounds: DifferentialPrivacy, run_id: str, report: DpRelease
) -> None:
    counts = clipped_counts(conn, start, bounds)
    digest = hashlib.sha256(repr([(s, int(u)) for s, _, u in counts]).encode()).hexdigest()
    key = {"t": TABLE, "w": start}
    before = conn.execute(_RELEASE, key).scalar()
    spent = float(conn.execute(_SPENT, key).scalar())
    if before == digest:
        report.kept.append(start)
    elif spent + bounds.epsilon_per_release > bounds.epsilon_budget_per_period + 1e-9:
        report.refused.append(start)
        conn.execute(
            sa.text("""UPDATE lifecycle.dp_releases SET refused = true
                       WHERE table_name = :t AND period_start = :w"""),
            key,
        )
    else:
        noisy = laplace(bounds)([int(u) for _, _, u in counts]) if counts else []
        _publish_period(conn, start, counts, [int(n) for n in noisy])
        conn.execute(
            sa.text("""
            INSERT INTO lifecycle.dp_releases (table_name, period_start, source_hash)
            VALUES (:t, :w, :h)
            ON CONFLICT (table_name, period_start) DO UPDATE
            SET source_hash = EXCLUDED.source_hash, released_at = now(), refused = false
        """),
            {**key, "h": digest},
        )
        conn.execute(
            sa.text("""INSERT INTO lifecycle.dp_ledger (table_name, period_start, epsilon, run_id, reason)
                       VALUES (:t, :w, :e, :r, :why)"""),
            {
                **key,
                "e": bounds.epsilon_per_release,
                "r": run_id,
                "why": "re-release: the source changed" if before else "first release",
            },
        )
        report.released.append(start)
        report.epsilon_spent_now += bounds.epsilon_per_release
        spent += bounds.epsilon_per_release
    report.spent_per_period[start.isoformat()] = round(spent, 6)


def release(engine: Engine, policy: Policy, as_of: datetime, run_id: str) -> DpRelease:
    """Releases the last PERIODS complete 28-day periods under differential privacy (nothing
    under k_threshold)."""
    started = time.perf_counter()
    bounds = policy.analytics.differential_privacy
    report = DpRelease(
        mechanism=policy.analytics.mechanism,
        epsilon_per_release=bounds.epsilon_per_release,
        budget_per_period=bounds.epsilon_budget_per_period,
    )
    if policy.analytics.mechanism != "differential_privacy":
        return report
    day = last_complete_day(engine, policy, as_of)
    starts = periods(day)
    after = starts[-1] + timedelta(weeks=PERIOD_WEEKS)
    with build_transaction(engine) as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        load_catalogue(conn, policy)
        report.catalogue = ambiguous_skus(conn, policy.raw.catalogue)
        src = Source(policy)
        rollup.load_lines(conn, src, policy.raw.catalogue, starts[0], after)
        report.uncounted = uncounted_lines(conn, src, [(starts[0], after)])
        report.without_customer = lines_without_customer(conn, src, starts[0], after)
        report.not_in_catalogue = skus_not_listed(conn, policy.raw.catalogue, "are in no release")
        for start in starts:
            _release_period(conn, start, bounds, run_id, report)
        scale = bounds.max_units_per_customer_per_period / bounds.epsilon_per_release
        last = starts[-1] + timedelta(weeks=PERIOD_WEEKS, days=-1)
        report.utility = measure_dp_utility(conn, starts[-1], last, scale)
        report.rows = conn.execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar_one()
    report.seconds = time.perf_counter() - started
    return report


_OVER_BUDGET = sa.text("""
    SELECT count(*) FILTER (WHERE spent > :budget + 1e-9),
           (SELECT count(*) FROM lifecycle.dp_releases WHERE table_name = :t AND refused)
    FROM (SELECT period_start, sum(epsilon) AS spent FROM lifecycle.dp_ledger
          WHERE table_name = :t GROUP BY period_start) w
""")


def budget_check(engine: Engine, policy: Policy) -> CheckResult:
    """Fails when a period's ε spent exceeds its budget, or a changed period could not be
    re-released."""
    budget = policy.analytics.differential_privacy.epsilon_budget_per_period
    with engine.connect() as conn:
        over, refused = conn.execute(_OVER_BUDGET, {"budget": budget, "t": TABLE}).one()
    findings = []
    if over:
        findings.append(
            Finding(
                TABLE, "", "epsilon_over_budget", over, detail=f"periods spent more than ε={budget}"
            )
        )
    if refused:
        findings.append(
            Finding(
                TABLE,
                "",
                "release_refused_over_budget",
                refused,
                detail=(
                    "periods whose orders changed after release could not be released again within "
                    "analytics.differential_privacy.epsilon_budget_per_period; their figures are "
                    "stale"
                ),
            )
        )
    return CheckResult(findings=findings, scanned={"budget_per_period": budget})
