"""Physical erasure per table, and erasures left pending: what each rewrite covered, and why one waited.

Revision ID: 0010
Revises: 0006
"""

from alembic import op

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE lifecycle.erasure_runs
            ADD COLUMN covers_until timestamptz,
            ADD COLUMN horizon_xid xid8;
        COMMENT ON COLUMN lifecycle.erasure_runs.covers_until IS
            'Every change recorded before this instant had committed before the rewrite began.';
        COMMENT ON COLUMN lifecycle.erasure_runs.horizon_xid IS
            'Row versions written by this transaction id or a later one may predate the rewrite.';

        -- What was cleared since a table's last rewrite is read by time: O(the night's changes).
        CREATE INDEX IF NOT EXISTS purge_ledger_recorded_at_idx ON lifecycle.purge_ledger (recorded_at);
        CREATE INDEX IF NOT EXISTS request_actions_recorded_at_idx
            ON lifecycle.request_actions (recorded_at);

        CREATE TABLE lifecycle.erasure_waits (
            wait_id        bigserial PRIMARY KEY,
            run_id         text NOT NULL,
            recorded_at    timestamptz NOT NULL DEFAULT now(),
            relations      text[] NOT NULL,
            cleared_since  timestamptz NOT NULL,
            waiting_for    text[] NOT NULL
        );
        CREATE INDEX erasure_waits_recorded_at_idx ON lifecycle.erasure_waits (recorded_at);
        COMMENT ON TABLE lifecycle.erasure_waits IS
            'A rewrite that waited: which tables, since when their cleared values are on disk, and '
            'which snapshots or locks held it (process ids, database names, slot names; never a value).';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE lifecycle.erasure_waits;
        DROP INDEX IF EXISTS lifecycle.request_actions_recorded_at_idx;
        DROP INDEX IF EXISTS lifecycle.purge_ledger_recorded_at_idx;
        ALTER TABLE lifecycle.erasure_runs DROP COLUMN horizon_xid, DROP COLUMN covers_until;
        """
    )
