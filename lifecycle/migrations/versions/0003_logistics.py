"""Carrier hand-off: shop.orders.carrier, logistics.handoff under row-level security, refresh log.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE shop.orders ADD COLUMN IF NOT EXISTS carrier text")
    op.execute(
        "COMMENT ON COLUMN shop.orders.carrier IS "
        "'The matched carrier (a name from policy.yaml logistics.carriers); NULL until matched.'"
    )
    # The hand-off holds the allow-list of lifecycle.policy.LOGISTICS_FIELDS and nothing else; the
    # policy picks which of them are filled and granted. Carrier roles and their policies are made
    # by lifecycle.logistics from the policy file, so none exist here and every row is hidden.
    op.execute(
        """
        CREATE SCHEMA IF NOT EXISTS logistics;
        REVOKE ALL ON SCHEMA logistics FROM PUBLIC;

        CREATE TABLE logistics.handoff (
            order_id          bigint PRIMARY KEY,
            carrier           text NOT NULL,
            receiver_name     text,
            receiver_address  text,
            receiver_postcode text,
            receiver_phone    text,
            ship_region       text
        );
        CREATE INDEX handoff_carrier_idx ON logistics.handoff (carrier);
        ALTER TABLE logistics.handoff ENABLE ROW LEVEL SECURITY;
        REVOKE ALL ON logistics.handoff FROM PUBLIC;
        COMMENT ON TABLE logistics.handoff IS
            'Orders awaiting delivery, with only what the matched carrier needs; each carrier role sees its own rows.';

        CREATE TABLE lifecycle.handoff_refreshes (
            run_id          text PRIMARY KEY,
            started_at      timestamptz NOT NULL DEFAULT now(),
            finished_at     timestamptz,
            snapshot        pg_snapshot NOT NULL,
            status          text NOT NULL DEFAULT 'running',
            policy_version  text NOT NULL,
            policy_hash     text NOT NULL,
            inserted        bigint NOT NULL DEFAULT 0,
            updated         bigint NOT NULL DEFAULT 0,
            removed         bigint NOT NULL DEFAULT 0,
            handoff_rows    bigint
        );
        COMMENT ON TABLE lifecycle.handoff_refreshes IS
            'One row per hand-off refresh: counts and the snapshot it began from, never a value.';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE lifecycle.handoff_refreshes")
    op.execute("DROP SCHEMA logistics CASCADE")
    op.execute("ALTER TABLE shop.orders DROP COLUMN IF EXISTS carrier")
