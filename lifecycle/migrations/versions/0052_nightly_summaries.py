"""Each nightly run's figures, kept in lifecycle so the run history can have its own retention.

Revision ID: 0052
Revises: 0051
"""

from alembic import op

revision = "0052"
down_revision = "0051"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE lifecycle.nightly_summaries (
            run_id      text PRIMARY KEY,
            created_at  timestamptz NOT NULL,
            finished_at timestamptz,
            summary     jsonb NOT NULL
        );
        CREATE INDEX nightly_summaries_created_idx ON lifecycle.nightly_summaries (created_at);
        COMMENT ON TABLE lifecycle.nightly_summaries IS
            'A finished nightly run as the report reads it (status, trigger, policy, counts, check '
            'names and verdicts): ids and counts only, kept after the run history is pruned.';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE lifecycle.nightly_summaries")
