"""Differentially private units per 28-day period and product line.

A planner sums the released sku counts of a product line. Each count is rounded and floored at
zero, so every sku that sold nothing adds the positive half of its noise: on a long-tail catalogue
(9,000 skus, most unsold in a period) the line sums came out at twice the units sold. The line
sum of the same noisy counts before the floor has no such bias; released here, it is
post-processing of the same release and spends no ε of its own (docs/sales.md).

Revision ID: 0220
Revises: 0210
"""

from alembic import op

revision = "0220"
down_revision = "0210"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE analytics.sales_units_dp_lines (
            period_start date NOT NULL,
            product_line text COLLATE "C" NOT NULL,
            units        bigint NOT NULL CHECK (units >= 0),
            PRIMARY KEY (period_start, product_line)
        );
        COMMENT ON TABLE analytics.sales_units_dp_lines IS
            'Units per 28-day period and product line: the sum of the line''s noisy sku counts of '
            'analytics.sales_units_dp before they were floored at zero, floored once. Derived from '
            'the same release, so it spends no epsilon of its own. See docs/sales.md.';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE analytics.sales_units_dp_lines")
