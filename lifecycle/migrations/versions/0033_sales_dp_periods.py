"""Differentially private releases per 28-day period instead of per ISO week.

A planner's per-sku total is over 28 days; released directly it carries one noise draw instead of
four summed weekly ones. Releases and the ε ledger are now keyed by the period's first Monday
(`period_start`). The weekly releases are dropped (they are re-released per period on the next
night, from the raw zone); the ledger keeps every ε already spent, under the week it was spent on.

Revision ID: 0033
Revises: 0032
"""

from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        TRUNCATE analytics.sales_units_dp, lifecycle.dp_releases;
        ALTER TABLE analytics.sales_units_dp RENAME COLUMN week_start TO period_start;
        ALTER TABLE lifecycle.dp_releases RENAME COLUMN week_start TO period_start;
        ALTER TABLE lifecycle.dp_ledger RENAME COLUMN week_start TO period_start;
        COMMENT ON TABLE analytics.sales_units_dp IS
            'Units per 28-day period (four ISO weeks from period_start) and catalogue sku with '
            'Laplace noise (OpenDP), epsilon-DP per customer; every catalogue sku has a row every '
            'released period. See docs/sales.md.';
        COMMENT ON TABLE lifecycle.dp_ledger IS
            'Every epsilon spent on a differentially private release, per table and period.';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        TRUNCATE analytics.sales_units_dp, lifecycle.dp_releases;
        ALTER TABLE analytics.sales_units_dp RENAME COLUMN period_start TO week_start;
        ALTER TABLE lifecycle.dp_releases RENAME COLUMN period_start TO week_start;
        ALTER TABLE lifecycle.dp_ledger RENAME COLUMN period_start TO week_start;
        """
    )
