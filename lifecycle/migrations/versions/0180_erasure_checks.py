"""Physical erasure: the nights that found nothing owed in a table move its mark on.

Revision ID: 0180
Revises: 0170

What a table (or partition) owes is read from the changes recorded since its mark, and the mark
was its last rewrite. A table nothing is cleared in is never rewritten, so its mark stayed where
it was; on a partitioned shop the newest partitions (the orders in flight) are such tables, and
each night read every change since the epoch for them: the whole purge ledger, each change placed
by a lookup of its order (lifecycle/retention/backlog.py). One row per table here holds the last
check that found nothing owed, with the same coverage bound and horizon a rewrite records, taken
before the changes were read; the mark is the later of the two.
"""

from alembic import op

revision = "0180"
down_revision = "0170"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE lifecycle.erasure_checks (
            relation      text PRIMARY KEY,
            covers_until  timestamptz NOT NULL,
            horizon_xid   xid8,
            run_id        text NOT NULL,
            checked_at    timestamptz NOT NULL DEFAULT now()
        );
        COMMENT ON TABLE lifecycle.erasure_checks IS
            'The last night that found no cleared value owed in a table: every change recorded '
            'before covers_until, or by a transaction older than horizon_xid, was read then.';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE lifecycle.erasure_checks")
