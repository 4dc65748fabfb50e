"""What became of pg_statistic after each rewrite, so a rewrite of it that could not run is owed.

Revision ID: 0160
Revises: 0150

After the erasure rewrites a table it ANALYZEs it, and the statistics' earlier rows, which hold
most common values and histogram bounds sampled before the purge, stay in pg_statistic's files
until pg_statistic itself is rewritten (lifecycle/retention/statistics.py). That rewrite waits
for the snapshots that could still read them; past the lock timeout it was reported as pending
and then forgotten: nothing retried it on a night with no table to rewrite, and the deadline
check did not see it. Each outcome is now a row here, with the time since which the statistics
have held cleared values not rewritten (`owed_since`); the latest row not `rewritten` makes
pg_statistic a pending erasure, retried every night and held to `erasure_deadline_hours`.
"""

from alembic import op

revision = "0160"
down_revision = "0150"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE lifecycle.statistics_erasures (
            statistics_erasure_id bigserial PRIMARY KEY,
            run_id       text NOT NULL,
            recorded_at  timestamptz NOT NULL DEFAULT now(),
            outcome      text NOT NULL,
            owed_since   timestamptz NOT NULL
        );
        COMMENT ON TABLE lifecycle.statistics_erasures IS
            'Each attempt to rewrite pg_statistic after an erasure: its outcome in words '
            '(rewritten, pending: what held it, not rewritten: why) and since when the statistics '
            'have held cleared values not rewritten. Counts and process ids only; never a value.';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE lifecycle.statistics_erasures")
