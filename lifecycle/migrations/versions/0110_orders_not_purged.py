"""The orders still to clear, indexed: the nightly's purge and summary then cost what is left to
clear, not the table's size (docs/retention.md, "What a night costs").

A partial index on shop.orders (order_id) WHERE purged_at IS NULL: small (the orders within their
windows and in service), and the purge's keyset walk and the due summary read it instead of every
order ever placed. Built here in the migration's transaction, which blocks writes to shop.orders
while it builds (seconds per million orders); on a large live shop a DBA builds it first, without
blocking, as docs/deployment.md shows (`CREATE INDEX CONCURRENTLY IF NOT EXISTS …`), and this
migration then keeps it. A shop whose orders table has no `purged_at` column (a policy naming its
own columns) is left alone: the purge works without the index, at the cost of a full walk.

Revision ID: 0110
Revises: 0100
"""

from alembic import op

revision = "0110"
down_revision = "0100"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'shop'
                       AND table_name = 'orders' AND column_name = 'purged_at') THEN
                CREATE INDEX IF NOT EXISTS orders_not_purged_idx ON shop.orders (order_id)
                    WHERE purged_at IS NULL;
            END IF;
        END $$;
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS shop.orders_not_purged_idx")
