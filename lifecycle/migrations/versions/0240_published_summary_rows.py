"""The rows of the last product-line summaries published, for the next one to be audited against.

The summary's windows slide by a week every Monday, so last week's 28-day row of a sku minus this
week's, plus this week's 7-day row, is the week that just left the window. A reader who kept last
week's copy can subtract it; each build now audits its windows against the previous publication's
as against a table it cannot change (lifecycle/sales/publications.py), and this table keeps which
rows that publication showed: catalogue codes, levels and windows, never a figure or a person.

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
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE lifecycle.published_summary_rows")
