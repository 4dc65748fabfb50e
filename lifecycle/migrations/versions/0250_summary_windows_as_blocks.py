"""The summary's windows become fixed blocks: the last complete 7-, 28- and 84-day blocks.

Its 28- and 91-day windows slid by a week every Monday, so a reader who kept every week's copy
could subtract one from another and, after a few months, read every week of a sku alone
(lifecycle/sales/blocks.py; docs/sales.md). Blocks counted from one Monday never overlap from one
copy to the next, and the long one must be made of whole 28-day blocks: 84 days, not 91. Each row
now says which days it covers (window_start, window_end), since the 28- and 84-day blocks end
before the Sunday of the build; the kept copies say where each window ended, so that a copy kept
from before this change is still placed over the days it showed.

The 91-day rows go (the next build, which rollup.PROTECTION makes rebuild, publishes the 84-day
ones); the other rows keep the days they showed, which ended on their Sunday.

Revision ID: 0250
Revises: 0240
"""

from alembic import op

revision = "0250"
down_revision = "0240"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        DELETE FROM analytics.product_line_summary WHERE window_days NOT IN (7, 28, 84);
        ALTER TABLE analytics.product_line_summary
            DROP CONSTRAINT product_line_summary_window_days_check,
            ADD CONSTRAINT product_line_summary_window_days_check
                CHECK (window_days IN (7, 28, 84)),
            ADD COLUMN window_start date,
            ADD COLUMN window_end date;
        UPDATE analytics.product_line_summary
        SET window_start = as_of_date - window_days + 1, window_end = as_of_date;
        ALTER TABLE analytics.product_line_summary
            ALTER COLUMN window_start SET NOT NULL,
            ALTER COLUMN window_end SET NOT NULL;
        COMMENT ON COLUMN analytics.product_line_summary.window_start IS
            'First day of the window: the last complete block of window_days days up to '
            'as_of_date, blocks counted from Monday 2001-01-01';
        COMMENT ON COLUMN analytics.product_line_summary.window_end IS
            'Last day of the window (as_of_date for the 7-day one; up to 3 and 11 weeks before it '
            'for the 28- and 84-day ones)';
        COMMENT ON TABLE analytics.product_line_summary IS
            'Units per sku and product line over the last complete 7-, 28- and 84-day blocks up '
            'to as_of_date, from the raw zone; cells under k rolled up, merged against '
            'differencing. See docs/sales.md.';
        ALTER TABLE lifecycle.published_summary_rows ADD COLUMN window_end date;
        UPDATE lifecycle.published_summary_rows SET window_end = as_of_date;
        ALTER TABLE lifecycle.published_summary_rows ALTER COLUMN window_end SET NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE lifecycle.published_summary_rows DROP COLUMN window_end;
        DELETE FROM analytics.product_line_summary WHERE window_days = 84;
        ALTER TABLE analytics.product_line_summary
            DROP COLUMN window_start,
            DROP COLUMN window_end,
            DROP CONSTRAINT product_line_summary_window_days_check,
            ADD CONSTRAINT product_line_summary_window_days_check
                CHECK (window_days IN (7, 28, 91));
        """
    )
