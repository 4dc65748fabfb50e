"""Planning tables: a row is identified by its level too.

A rolled-up row reads OTHER where its level hides a label (the sku of a product line's row, the
product line of the all row). A shop's catalogue may name a product line or a sku OTHER itself,
and then a product line's row and the week's all row, or a sku's row and its line's row, carry
the same labels and differ only in their level. The primary keys now include the level, so both
are published, as a reader tells them apart (docs/sales.md, "The planning tables").

Revision ID: 0210
Revises: 0200
"""

from alembic import op

revision = "0210"
down_revision = "0200"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE analytics.weekly_demand
            DROP CONSTRAINT weekly_demand_pkey,
            ADD PRIMARY KEY (week_start, level, product_line, sku, region);
        ALTER TABLE analytics.product_line_summary
            DROP CONSTRAINT product_line_summary_pkey,
            ADD PRIMARY KEY (as_of_date, window_days, level, product_line, sku);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE analytics.weekly_demand
            DROP CONSTRAINT weekly_demand_pkey,
            ADD PRIMARY KEY (week_start, product_line, sku, region);
        ALTER TABLE analytics.product_line_summary
            DROP CONSTRAINT product_line_summary_pkey,
            ADD PRIMARY KEY (as_of_date, window_days, product_line, sku);
        """
    )
