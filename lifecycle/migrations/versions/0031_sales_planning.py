"""Planning tables at a planner's grains, rolled up instead of withheld.

analytics.weekly_demand and analytics.product_line_summary are rebuilt from the
raw zone at their own grain (docs/sales.md): a row is a cell of its level, and what is too small
at one level is counted in the row one level up, so the rows of a period add up to its units.

Revision ID: 0031
Revises: 0030
"""

from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        DROP TABLE analytics.weekly_demand, analytics.product_line_summary;

        CREATE TABLE analytics.weekly_demand (
            week_start   date NOT NULL,
            level        text NOT NULL CHECK (level IN ('sku_region', 'sku', 'product_line', 'all')),
            product_line text COLLATE "C" NOT NULL,
            sku          text COLLATE "C" NOT NULL,
            region       text COLLATE "C" NOT NULL,
            orders       bigint NOT NULL,
            units        bigint NOT NULL,
            revenue      numeric(14,2) NOT NULL,
            customers    bigint NOT NULL,
            PRIMARY KEY (week_start, product_line, sku, region)
        );
        COMMENT ON TABLE analytics.weekly_demand IS
            'Units per ISO week, sku and region from the raw zone; a cell under k customers rolls up '
            '(region -> OTHER, sku -> OTHER of its product line, line -> OTHER), so the rows of a week '
            'add up to its sold units. See docs/sales.md.';

        CREATE TABLE analytics.product_line_summary (
            as_of_date   date NOT NULL,
            window_days  int NOT NULL CHECK (window_days IN (7, 28, 91)),
            level        text NOT NULL CHECK (level IN ('sku', 'product_line', 'all')),
            product_line text COLLATE "C" NOT NULL,
            sku          text COLLATE "C" NOT NULL,
            orders       bigint NOT NULL,
            units        bigint NOT NULL,
            revenue      numeric(14,2) NOT NULL,
            units_share_pct numeric(6,2) NOT NULL,
            customers    bigint NOT NULL,
            PRIMARY KEY (as_of_date, window_days, product_line, sku)
        );
        COMMENT ON TABLE analytics.product_line_summary IS
            'Units per sku and product line over the 7/28/91 days up to as_of_date, from the raw zone; '
            'a sku under k customers counts in its line''s OTHER row, a line under k in OTHER/OTHER.';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE analytics.weekly_demand, analytics.product_line_summary")
    op.execute(
        """
        CREATE TABLE analytics.weekly_demand (
            week_start date NOT NULL, sku text COLLATE "C" NOT NULL, region text COLLATE "C" NOT NULL,
            week_complete boolean NOT NULL, units bigint NOT NULL, orders bigint NOT NULL,
            revenue numeric(14,2) NOT NULL, days_with_sales int NOT NULL,
            units_avg_4w numeric(14,2) NOT NULL, units_change_wow bigint,
            units_change_wow_pct numeric(9,1), customers bigint NOT NULL,
            PRIMARY KEY (week_start, sku, region)
        );
        CREATE TABLE analytics.product_line_summary (
            as_of_date date NOT NULL, sku text COLLATE "C" NOT NULL, units_7d bigint NOT NULL,
            units_28d bigint NOT NULL, units_91d bigint NOT NULL, revenue_7d numeric(14,2) NOT NULL,
            revenue_28d numeric(14,2) NOT NULL, revenue_91d numeric(14,2) NOT NULL,
            units_share_7d_pct numeric(6,2) NOT NULL, units_share_28d_pct numeric(6,2) NOT NULL,
            units_share_91d_pct numeric(6,2) NOT NULL, revenue_share_7d_pct numeric(6,2) NOT NULL,
            revenue_share_28d_pct numeric(6,2) NOT NULL, revenue_share_91d_pct numeric(6,2) NOT NULL,
            units_change_28d_pct numeric(9,1), revenue_rank_91d int NOT NULL, abc_class text NOT NULL,
            customers bigint NOT NULL, PRIMARY KEY (as_of_date, sku)
        );
        """
    )
