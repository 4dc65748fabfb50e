"""Differentially private weekly units per sku, with the releases kept and ε accounted.

analytics.sales_units_dp holds the released (noisy, non-negative) units of every catalogue sku
for each released ISO week. lifecycle.dp_releases keeps a hash of each week's clipped source, so a
re-run releases nothing new and draws no new noise; lifecycle.dp_ledger records every ε spent,
per table and week, so a re-release after late data is accounted and the budget can be checked.

Revision ID: 0032
Revises: 0031
"""

from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE analytics.sales_units_dp (
            week_start   date NOT NULL,
            product_line text COLLATE "C" NOT NULL,
            sku          text COLLATE "C" NOT NULL,
            units        bigint NOT NULL CHECK (units >= 0),
            PRIMARY KEY (week_start, sku)
        );
        COMMENT ON TABLE analytics.sales_units_dp IS
            'Units per ISO week and catalogue sku with Laplace noise (OpenDP), epsilon-DP per customer; '
            'every catalogue sku has a row every released week. See docs/sales.md.';

        CREATE TABLE lifecycle.dp_releases (
            table_name  text NOT NULL,
            week_start  date NOT NULL,
            source_hash text NOT NULL,
            released_at timestamptz NOT NULL DEFAULT now(),
            refused     boolean NOT NULL DEFAULT false,  -- the source changed, the budget is spent
            PRIMARY KEY (table_name, week_start)
        );
        CREATE TABLE lifecycle.dp_ledger (
            entry_id    bigserial PRIMARY KEY,
            table_name  text NOT NULL,
            week_start  date NOT NULL,
            epsilon     double precision NOT NULL CHECK (epsilon > 0),
            spent_at    timestamptz NOT NULL DEFAULT now(),
            run_id      text NOT NULL,
            reason      text NOT NULL
        );
        CREATE INDEX dp_ledger_week_idx ON lifecycle.dp_ledger (table_name, week_start);
        COMMENT ON TABLE lifecycle.dp_ledger IS
            'Every epsilon spent on a differentially private release, per table and week.';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE lifecycle.dp_ledger, lifecycle.dp_releases, analytics.sales_units_dp")
