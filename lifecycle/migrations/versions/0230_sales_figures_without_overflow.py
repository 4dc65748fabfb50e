"""Published revenue and shares that no sales line can overflow.

Revenue was numeric(14,2): one line priced past 10^12 in a published cell (a mistyped price, a
mapped shop's wider price column, or a line typed to stop the night) failed the whole sales build
with a numeric overflow, and every table after it stayed a night behind. numeric(1000,2) keeps
the cents and takes any sum PostgreSQL can compute; widening a numeric's precision rewrites
nothing.

units_share_pct was numeric(6,2) NOT NULL: where returns booked as negative lines bring a
window's units near zero a share passes 9,999.99%, and where they bring it to zero or below there
is no share at all (the build divided by zero). It is now NULL there (docs/sales.md).

Revision ID: 0230
Revises: 0220
"""

from alembic import op

revision = "0230"
down_revision = "0220"
branch_labels = None
depends_on = None

REVENUE_TABLES = ("sales_volume_daily", "weekly_demand", "product_line_summary")


def upgrade() -> None:
    for table in REVENUE_TABLES:
        op.execute(f"ALTER TABLE analytics.{table} ALTER COLUMN revenue TYPE numeric(1000, 2)")
    op.execute(
        """
        ALTER TABLE analytics.product_line_summary
            ALTER COLUMN units_share_pct TYPE numeric(1000, 2),
            ALTER COLUMN units_share_pct DROP NOT NULL;
        COMMENT ON COLUMN analytics.product_line_summary.units_share_pct IS
            'The row''s units as a percentage of the window''s published units; NULL when those '
            'add up to zero or less (returns booked as negative lines). See docs/sales.md.';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        UPDATE analytics.product_line_summary SET units_share_pct = 0
        WHERE units_share_pct IS NULL OR abs(units_share_pct) >= 10000;
        COMMENT ON COLUMN analytics.product_line_summary.units_share_pct IS NULL;
        ALTER TABLE analytics.product_line_summary
            ALTER COLUMN units_share_pct SET NOT NULL,
            ALTER COLUMN units_share_pct TYPE numeric(6, 2);
        """
    )
    for table in REVENUE_TABLES:
        op.execute(f"ALTER TABLE analytics.{table} ALTER COLUMN revenue TYPE numeric(14, 2)")
