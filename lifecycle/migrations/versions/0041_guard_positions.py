"""Where each incremental guard scan stopped: the run-history scan reads only events written after
its last clean scan.

Revision ID: 0041
Revises: 0040
"""

from alembic import op

revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE lifecycle.guard_positions (
            scan        text NOT NULL,
            source      text NOT NULL,
            position    bigint NOT NULL,
            scanned_at  timestamptz NOT NULL,
            PRIMARY KEY (scan, source)
        );
        COMMENT ON TABLE lifecycle.guard_positions IS
            'Per source (a Dagster run id), the last event storage id an incremental guard scan '
            'passed clean.';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE lifecycle.guard_positions")
