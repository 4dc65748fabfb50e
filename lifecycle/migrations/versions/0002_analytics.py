"""Published sales volume (analytics.*) and the bookkeeping that keeps it fresh (lifecycle.sales_*).

Nothing in `analytics` carries a customer id, an order id or a personal column; which source rows
changed since the last build is recorded in `lifecycle`, never beside the published figures.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS analytics")
    op.execute(
        """
        CREATE TABLE analytics.sales_volume_daily (
            sales_date date NOT NULL,
            sku        text COLLATE "C" NOT NULL,
            region     text COLLATE "C" NOT NULL,
            orders     bigint NOT NULL,
            units      bigint NOT NULL,
            revenue    numeric(14,2) NOT NULL,
            customers  bigint NOT NULL,
            PRIMARY KEY (sales_date, sku, region)
        );
        COMMENT ON TABLE analytics.sales_volume_daily IS
            'Units sold per day, sku and ship region (paid/shipped/delivered orders, dated in the shop time zone). '
            'Every row covers at least min_customers_per_cell distinct customers; smaller cells fold into region OTHER, '
            'an OTHER row still too small is withheld. See docs/sales.md.';
        COMMENT ON COLUMN analytics.sales_volume_daily.customers IS
            'Distinct customers behind the row (a customer counts once across the cells folded into OTHER).';

        CREATE TABLE analytics.weekly_demand (
            week_start           date NOT NULL,
            sku                  text COLLATE "C" NOT NULL,
            region               text COLLATE "C" NOT NULL,
            week_complete        boolean NOT NULL,
            units                bigint NOT NULL,
            orders               bigint NOT NULL,
            revenue              numeric(14,2) NOT NULL,
            days_with_sales      int NOT NULL,
            units_avg_4w         numeric(14,2) NOT NULL,
            units_change_wow     bigint,
            units_change_wow_pct numeric(9,1),
            customers            bigint NOT NULL,
            PRIMARY KEY (week_start, sku, region)
        );
        COMMENT ON TABLE analytics.weekly_demand IS
            'Weekly demand per sku and region (ISO weeks, Monday first), built from sales_volume_daily only.';
        COMMENT ON COLUMN analytics.weekly_demand.customers IS
            'At least this many distinct customers stand behind the week (the largest daily row); 0 when units = 0.';

        CREATE TABLE analytics.product_line_summary (
            as_of_date           date NOT NULL,
            sku                  text COLLATE "C" NOT NULL,
            units_7d             bigint NOT NULL,
            units_28d            bigint NOT NULL,
            units_91d            bigint NOT NULL,
            revenue_7d           numeric(14,2) NOT NULL,
            revenue_28d          numeric(14,2) NOT NULL,
            revenue_91d          numeric(14,2) NOT NULL,
            units_share_7d_pct   numeric(6,2) NOT NULL,
            units_share_28d_pct  numeric(6,2) NOT NULL,
            units_share_91d_pct  numeric(6,2) NOT NULL,
            revenue_share_7d_pct  numeric(6,2) NOT NULL,
            revenue_share_28d_pct numeric(6,2) NOT NULL,
            revenue_share_91d_pct numeric(6,2) NOT NULL,
            units_change_28d_pct numeric(9,1),
            revenue_rank_91d     int NOT NULL,
            abc_class            text NOT NULL,
            customers            bigint NOT NULL,
            PRIMARY KEY (as_of_date, sku)
        );
        COMMENT ON TABLE analytics.product_line_summary IS
            'Units and revenue share per sku over the 7/28/91 days up to as_of_date, built from sales_volume_daily only.';
        COMMENT ON COLUMN analytics.product_line_summary.customers IS
            'At least this many distinct customers stand behind the row (the largest daily row in 91 days).';
        """
    )
    op.execute(
        """
        CREATE TABLE lifecycle.sales_changes (
            hour      timestamptz,
            marked_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX sales_changes_hour_idx ON lifecycle.sales_changes (hour);
        COMMENT ON TABLE lifecycle.sales_changes IS
            'UTC hours of placed_at whose sales rows changed since the last build (written by triggers on the '
            'raw tables, consumed by the sales refresh). NULL hour: a TRUNCATE, every day is stale.';

        CREATE TABLE lifecycle.sales_days (
            sales_date      date PRIMARY KEY,
            built_at        timestamptz NOT NULL,
            run_id          text NOT NULL,
            source_lines    bigint NOT NULL,
            units_total     bigint NOT NULL,
            units_published bigint NOT NULL,
            units_folded    bigint NOT NULL,
            units_withheld  bigint NOT NULL,
            rows_published  bigint NOT NULL,
            cells_folded    bigint NOT NULL,
            rows_withheld   bigint NOT NULL
        );
        COMMENT ON TABLE lifecycle.sales_days IS
            'One row per built sales date: what the small-cell protection cost that day (counts only).';

        CREATE TABLE lifecycle.sales_state (
            id                boolean PRIMARY KEY DEFAULT true CHECK (id),
            build_signature   text NOT NULL,
            capture_signature text NOT NULL,
            updated_at        timestamptz NOT NULL DEFAULT now()
        );
        COMMENT ON TABLE lifecycle.sales_state IS
            'How the published days were built (time zone, k, source mapping) and which change capture feeds them; '
            'a difference forces a full rebuild.';
        """
    )
    # The nightly refresh reads one day of orders by placed_at; without this it scans every order.
    op.execute("CREATE INDEX IF NOT EXISTS orders_placed_at_idx ON shop.orders (placed_at)")


def downgrade() -> None:
    op.execute("""DROP FUNCTION IF EXISTS lifecycle.sales_capture_orders_rows(), lifecycle.sales_capture_orders_update(),
        lifecycle.sales_capture_items_rows(), lifecycle.sales_capture_items_update(), lifecycle.sales_capture_truncate()
        CASCADE""")  # installed by lifecycle/sales.py, as is the aggregate below
    op.execute("DROP AGGREGATE IF EXISTS lifecycle.array_concat(anycompatiblearray)")
    op.execute("DROP INDEX IF EXISTS shop.orders_placed_at_idx")
    op.execute("DROP TABLE lifecycle.sales_state, lifecycle.sales_days, lifecycle.sales_changes")
    op.execute(
        "DROP TABLE analytics.product_line_summary, analytics.weekly_demand, analytics.sales_volume_daily"
    )
    op.execute("DROP SCHEMA IF EXISTS analytics")
