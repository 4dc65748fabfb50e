"""The rows of the last planning tables published, for the next build to be audited against.

The summary's windows slide by a week every Monday, so last week's 28-day row of a sku minus this
week's, plus this week's 7-day row, is the week that just left the window; and a week of the
weekly table merged differently from last week's copy gives away the difference. A reader who
kept last week's copies can subtract them; each build now audits its tables against the previous
publication's as against tables it cannot change (lifecycle/sales/publications.py), and these two
tables keep which rows that publication showed: catalogue codes, regions, levels, weeks and
windows, never a figure or a person.

Revision ID: 0240
Revises: 0230
"""

from alembic import op

revision = "0240"
down_revision = "0230"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE lifecycle.published_summary_rows (
            as_of_date date NOT NULL,
            window_days int NOT NULL,
            level text NOT NULL,
            product_line text NOT NULL,
            sku text NOT NULL,
            PRIMARY KEY (as_of_date, window_days, level, product_line, sku)
        );
        COMMENT ON TABLE lifecycle.published_summary_rows IS
            'Which rows analytics.product_line_summary showed for its last as_of_dates (keys '
            'only): the next build is audited against them. See docs/sales.md.';
        CREATE TABLE lifecycle.published_weekly_rows (
            as_of_date date NOT NULL,
            week_start date NOT NULL,
            level text NOT NULL,
            product_line text NOT NULL,
            sku text NOT NULL,
            region text NOT NULL,
            PRIMARY KEY (as_of_date, week_start, level, product_line, sku, region)
        );
        COMMENT ON TABLE lifecycle.published_weekly_rows IS
            'Which rows analytics.weekly_demand showed when built for its last as_of_dates (keys '
            'only): the next build is audited against them. See docs/sales.md.';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE lifecycle.published_weekly_rows, lifecycle.published_summary_rows")
