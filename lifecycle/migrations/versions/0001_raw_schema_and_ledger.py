"""Reference raw schema (shop.*) and the purge ledger (lifecycle.*).

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS shop")
    op.execute("CREATE SCHEMA IF NOT EXISTS lifecycle")
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS shop.orders (
            order_id          bigint PRIMARY KEY,
            customer_id       bigint NOT NULL,
            status            text NOT NULL,
            placed_at         timestamptz NOT NULL,
            paid_at           timestamptz,
            shipped_at        timestamptz,
            delivered_at      timestamptz,
            cancelled_at      timestamptz,
            ship_region       text,
            receiver_name     text,
            receiver_phone    text,
            receiver_email    text,
            receiver_address  text,
            receiver_postcode text,
            payment_ref       text,
            purged_at         timestamptz
        );
        CREATE INDEX IF NOT EXISTS orders_customer_id_idx ON shop.orders (customer_id);

        CREATE TABLE IF NOT EXISTS shop.order_items (
            order_id   bigint REFERENCES shop.orders,
            line_no    int,
            sku        text NOT NULL,
            quantity   int NOT NULL,
            unit_price numeric(12,2) NOT NULL,
            PRIMARY KEY (order_id, line_no)
        );

        CREATE TABLE IF NOT EXISTS shop.after_sales_cases (
            case_id   bigint PRIMARY KEY,
            order_id  bigint REFERENCES shop.orders,
            kind      text NOT NULL,
            opened_at timestamptz NOT NULL,
            closed_at timestamptz,
            note      text
        );
        CREATE INDEX IF NOT EXISTS after_sales_cases_order_id_idx ON shop.after_sales_cases (order_id);
        """
    )
    op.execute(
        """
        CREATE TABLE lifecycle.purge_runs (
            run_id          text PRIMARY KEY,
            started_at      timestamptz NOT NULL DEFAULT now(),
            finished_at     timestamptz,
            as_of           timestamptz NOT NULL,
            policy_version  text NOT NULL,
            policy_hash     text NOT NULL,
            status          text NOT NULL DEFAULT 'running',
            purged          bigint NOT NULL DEFAULT 0,
            summary         jsonb
        );
        COMMENT ON TABLE lifecycle.purge_runs IS
            'One row per purge run: counts and order ids only, never a personal value.';

        CREATE TABLE lifecycle.purge_ledger (
            ledger_id       bigserial PRIMARY KEY,
            run_id          text NOT NULL,
            order_id        bigint NOT NULL,
            purged_at       timestamptz NOT NULL,
            recorded_at     timestamptz NOT NULL DEFAULT now(),
            action          text NOT NULL,
            reason          text NOT NULL,
            request_id      bigint,
            policy_version  text NOT NULL,
            policy_hash     text NOT NULL,
            cleared_columns text[] NOT NULL
        );
        CREATE INDEX purge_ledger_order_id_idx ON lifecycle.purge_ledger (order_id);
        CREATE INDEX purge_ledger_run_id_idx ON lifecycle.purge_ledger (run_id);
        COMMENT ON TABLE lifecycle.purge_ledger IS
            'Audit ledger: one row per order whose personal fields were cleared. Column names only.';

        CREATE TABLE lifecycle.erasure_runs (
            erasure_id    bigserial PRIMARY KEY,
            run_id        text NOT NULL,
            started_at    timestamptz NOT NULL,
            finished_at   timestamptz NOT NULL,
            mechanism     text NOT NULL,
            tables        text[] NOT NULL,
            bytes_before  bigint NOT NULL,
            bytes_after   bigint NOT NULL
        );
        COMMENT ON TABLE lifecycle.erasure_runs IS
            'Physical erasure: when purged row versions were rewritten out of the data files.';

        CREATE TABLE lifecycle.demo_seeds (
            seeded_at timestamptz NOT NULL DEFAULT now(),
            seed      int NOT NULL,
            orders    bigint NOT NULL,
            as_of     timestamptz NOT NULL
        );
        COMMENT ON TABLE lifecycle.demo_seeds IS
            'Marks a shop seeded by `lifecycle demo`, the only kind the demo will reseed.';
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE lifecycle.demo_seeds, lifecycle.erasure_runs, lifecycle.purge_ledger, lifecycle.purge_runs"
    )
    op.execute("DROP TABLE shop.after_sales_cases, shop.order_items, shop.orders")
