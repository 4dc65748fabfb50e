"""The orders whose own window may have closed, indexed: the purge and the overdue check then read
the orders that became due (and those a case keeps), not every order in flight.

A partial index on shop.orders over the instant the order's own window opened (delivery,
cancellation, or placing for an unpaid order; NULL for an order in service), WHERE purged_at IS
NULL. `lifecycle/retention/rules.py` (`window_opened`) writes the same expression, so PostgreSQL
matches it, and ANALYZE keeps statistics of the expression over the indexed rows alone, so the
planner knows how few of the orders in flight are past a cutoff. Before, the purge's batches and
the overdue check judged every order not cleared yet: at 10M orders about 1.2M every night for a
few thousand due (docs/retention.md, "What a night costs").

A status change now writes this index (status and the timestamps are in its expression), so the
shop's status updates are no longer HOT updates; docs/deployment.md says what that costs. Built
here in the migration's transaction, which blocks writes to shop.orders while it builds; on a
large live shop a DBA builds it first with `CREATE INDEX CONCURRENTLY IF NOT EXISTS` (on each
partition, then the parent), and this migration keeps it. A shop whose orders table lacks one of
the reference columns is left alone: the purge then walks the orders in flight, as before.

Revision ID: 0190
Revises: 0180
"""

from alembic import op

revision = "0190"
down_revision = "0180"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
            IF (SELECT count(*) FROM information_schema.columns WHERE table_schema = 'shop'
                AND table_name = 'orders' AND column_name IN
                ('status', 'placed_at', 'delivered_at', 'cancelled_at', 'purged_at')) = 5 THEN
                CREATE INDEX IF NOT EXISTS orders_window_opened_idx ON shop.orders ((
                    CASE status WHEN 'delivered' THEN delivered_at WHEN 'cancelled' THEN cancelled_at
                                WHEN 'placed' THEN placed_at END))
                    WHERE purged_at IS NULL;
            END IF;
        END $$;
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS shop.orders_window_opened_idx")
