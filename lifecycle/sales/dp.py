"""Differentially private weekly units per sku (`analytics.mechanism: differential_privacy`).

Every catalogue sku gets a row every released week (a public key set: no partition is selected
from the data, so a row's presence says nothing). Each customer's units in a week are clipped in
SQL (lifecycle/policy/privacy.py), the clipped counts per sku leave the database as one small
vector, OpenDP's Laplace mechanism adds noise calibrated to the clip and ε, and the released
counts are rounded to non-negative integers (post-processing keeps the guarantee).

A release is stored: a re-run of a week whose clipped source is unchanged releases nothing and
draws no new noise. A week whose source changed (late data) is released again and spends ε again;
every ε spent is in lifecycle.dp_ledger. A re-release that would exceed the week's budget is
refused (the old release stays), marked, and fails the check `dp_release_within_budget`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import opendp.prelude as dp
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.checks import CheckResult, Finding
from lifecycle.policy import Policy
from lifecycle.policy.privacy import DifferentialPrivacy
from lifecycle.sales import planning, rollup
from lifecycle.sales.daily import LOCK_KEY, SalesError, last_complete_day
from lifecycle.sales.source import Source

TABLE = "analytics.sales_units_dp"

dp.enable_features("contrib")


def laplace(bounds: DifferentialPrivacy) -> dp.Measurement:
    """OpenDP's Laplace mechanism on a vector of counts one customer moves by at most the bound."""
    bound = bounds.max_units_per_customer_per_week
    space = dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int)
    return dp.m.make_laplace(*space, scale=bound / bounds.epsilon_per_release)


def privacy_loss(bounds: DifferentialPrivacy) -> float:
    """ε of one release, as OpenDP's privacy map states it for the contribution bound."""
    return float(laplace(bounds).map(bounds.max_units_per_customer_per_week))


# Clipped counts of one week for every catalogue sku: a customer's units per sku are capped, then
# their skus (in a fixed pseudo-random order) count until the week's cap is used up.
_CLIPPED = sa.text("""
WITH per_cell AS (
    SELECT customer_id, sku, least(sum(units), :cell_cap) AS units
    FROM pg_temp.sales_lines WHERE week_start = :week GROUP BY customer_id, sku
), clipped AS (
    SELECT sku, greatest(0, least(units, :week_cap - coalesce(sum(units) OVER (
               PARTITION BY customer_id ORDER BY md5(customer_id::text || sku)
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0))) AS units
    FROM per_cell
)
SELECT c.sku, c.product_line, coalesce(sum(k.units), 0)::bigint
FROM pg_temp.dp_catalogue c LEFT JOIN clipped k USING (sku)
GROUP BY c.sku, c.product_line ORDER BY c.sku
""")
_RELEASE = sa.text(
    "SELECT source_hash FROM lifecycle.dp_releases WHERE table_name = :t AND week_start = :w"
)
_SPENT = sa.text(
    "SELECT coalesce(sum(epsilon), 0) FROM lifecycle.dp_ledger WHERE table_name = :t AND week_start = :w"
)


@dataclass
class DpRelease:
    """What one run released, kept and refused, and the ε it spent: counts and weeks only."""

    mechanism: str
    epsilon_per_release: float = 0.0
    budget_per_week: float = 0.0
    released: list[date] = field(default_factory=list)
    kept: list[date] = field(default_factory=list)
    refused: list[date] = field(default_factory=list)
    epsilon_spent_now: float = 0.0
    spent_per_week: dict[str, float] = field(default_factory=dict)
    rows: int = 0
    seconds: float = 0.0

    def metadata(self) -> dict[str, object]:
        """ε spent and left per week, for the Dagster UI."""
        return {
            "mechanism": self.mechanism,
            "epsilon_per_release": self.epsilon_per_release,
            "epsilon_budget_per_week": self.budget_per_week,
            "weeks_released": [d.isoformat() for d in self.released],
            "weeks_kept_without_new_noise": len(self.kept),
            "weeks_refused_over_budget": [d.isoformat() for d in self.refused],
            "epsilon_spent_this_run": round(self.epsilon_spent_now, 6),
            "epsilon_spent_per_week": self.spent_per_week,
            "epsilon_left_per_week": {
                w: round(self.budget_per_week - s, 6) for w, s in self.spent_per_week.items()
            },
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
        }


def _catalogue(conn: Connection, policy: Policy) -> None:
    catalogue = policy.raw.catalogue
    if catalogue is None:
        raise SalesError(
            f"{policy.path.name}: analytics.mechanism: differential_privacy needs the public list of "
            "skus: map raw.catalogue (reference table shop.products)"
        )
    conn.execute(
        sa.text(f"""
        CREATE TEMP TABLE dp_catalogue ON COMMIT DROP AS
        SELECT DISTINCT CAST({catalogue.col("sku")} AS text) COLLATE "C" AS sku,
               CAST({catalogue.col("product_line")} AS text) COLLATE "C" AS product_line
        FROM {catalogue.sql}
    """)
    )


def _release_week(
    conn: Connection, week: date, bounds: DifferentialPrivacy, run_id: str, report: DpRelease
) -> None:
    params = {
        "week": week,
        "cell_cap": bounds.max_units_per_customer_per_cell,
        "week_cap": bounds.max_units_per_customer_per_week,
    }
    counts = conn.execute(_CLIPPED, params).all()
    digest = hashlib.sha256(repr([(s, int(u)) for s, _, u in counts]).encode()).hexdigest()
    key = {"t": TABLE, "w": week}
    before = conn.execute(_RELEASE, key).scalar()
    spent = float(conn.execute(_SPENT, key).scalar())
    if before == digest:
        report.kept.append(week)
    elif spent + bounds.epsilon_per_release > bounds.epsilon_budget_per_week + 1e-9:
        report.refused.append(week)
        conn.execute(
            sa.text("""UPDATE lifecycle.dp_releases SET refused = true
                       WHERE table_name = :t AND week_start = :w"""),
            key,
        )
    else:
        noisy = laplace(bounds)([int(u) for _, _, u in counts]) if counts else []
        conn.execute(sa.text(f"DELETE FROM {TABLE} WHERE week_start = :w"), key)
        if counts:
            conn.execute(
                sa.text(f"INSERT INTO {TABLE} VALUES (:w, :line, :sku, :units)"),
                [
                    {"w": week, "line": line, "sku": sku, "units": max(0, int(n))}
                    for (sku, line, _), n in zip(counts, noisy, strict=True)
                ],
            )
        conn.execute(
            sa.text("""
            INSERT INTO lifecycle.dp_releases (table_name, week_start, source_hash)
            VALUES (:t, :w, :h)
            ON CONFLICT (table_name, week_start) DO UPDATE
            SET source_hash = EXCLUDED.source_hash, released_at = now(), refused = false
        """),
            {**key, "h": digest},
        )
        conn.execute(
            sa.text("""INSERT INTO lifecycle.dp_ledger (table_name, week_start, epsilon, run_id, reason)
                       VALUES (:t, :w, :e, :r, :why)"""),
            {
                **key,
                "e": bounds.epsilon_per_release,
                "r": run_id,
                "why": "re-release: the source changed" if before else "first release",
            },
        )
        report.released.append(week)
        report.epsilon_spent_now += bounds.epsilon_per_release
        spent += bounds.epsilon_per_release
    report.spent_per_week[week.isoformat()] = round(spent, 6)


def release(engine: Engine, policy: Policy, as_of: datetime, run_id: str) -> DpRelease:
    """Releases the last 13 complete weeks under differential privacy (nothing under k_threshold)."""
    started = time.perf_counter()
    bounds = policy.analytics.differential_privacy
    report = DpRelease(
        mechanism=policy.analytics.mechanism,
        epsilon_per_release=bounds.epsilon_per_release,
        budget_per_week=bounds.epsilon_budget_per_week,
    )
    if policy.analytics.mechanism != "differential_privacy":
        return report
    day = last_complete_day(engine, policy, as_of)
    first, last = planning.weekly_span(day)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        _catalogue(conn, policy)
        rollup.load_lines(conn, Source(policy), policy.raw.catalogue, first, last + timedelta(7))
        week = first
        while week <= last:
            _release_week(conn, week, bounds, run_id, report)
            week += timedelta(weeks=1)
        report.rows = conn.execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar_one()
    report.seconds = time.perf_counter() - started
    return report


_OVER_BUDGET = sa.text("""
    SELECT count(*) FILTER (WHERE spent > :budget + 1e-9),
           (SELECT count(*) FROM lifecycle.dp_releases WHERE table_name = :t AND refused)
    FROM (SELECT week_start, sum(epsilon) AS spent FROM lifecycle.dp_ledger
          WHERE table_name = :t GROUP BY week_start) w
""")


def budget_check(engine: Engine, policy: Policy) -> CheckResult:
    """Fails when a week's ε spent exceeds its budget, or a changed week could not be re-released."""
    budget = policy.analytics.differential_privacy.epsilon_budget_per_week
    with engine.connect() as conn:
        over, refused = conn.execute(_OVER_BUDGET, {"budget": budget, "t": TABLE}).one()
    findings = []
    if over:
        findings.append(
            Finding(
                TABLE, "", "epsilon_over_budget", over, detail=f"weeks spent more than ε={budget}"
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
                    "weeks whose orders changed after release could not be released again within "
                    "analytics.differential_privacy.epsilon_budget_per_week; their figures are stale"
                ),
            )
        )
    return CheckResult(findings=findings, scanned={"budget_per_week": budget})
