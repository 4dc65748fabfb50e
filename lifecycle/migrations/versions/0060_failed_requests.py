"""Data requests: status `failed`, for a request the database refuses every time it is tried.

A correction into a column of another type, or a shop trigger that raises, fails the same way on
every retry; such a request is answered `failed` with its SQLSTATE instead of staying `in_progress`
forever. It stays open (completed_at NULL, in the open-requests index) until a person acts.

Revision ID: 0060
Revises: 0052
"""

from alembic import op

revision = "0060"
down_revision = "0052"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE shop.data_requests DROP CONSTRAINT data_requests_status_check,
            ADD CONSTRAINT data_requests_status_check CHECK (status IN
                ('received', 'in_progress', 'done', 'partly_done', 'rejected', 'failed'));
        DROP INDEX shop.data_requests_open_idx;
        CREATE INDEX data_requests_open_idx ON shop.data_requests (received_at, request_id)
            WHERE status IN ('received', 'in_progress', 'partly_done', 'failed');
        """
    )


def downgrade() -> None:
    op.execute(
        """
        UPDATE shop.data_requests SET status = 'in_progress' WHERE status = 'failed';
        ALTER TABLE shop.data_requests DROP CONSTRAINT data_requests_status_check,
            ADD CONSTRAINT data_requests_status_check CHECK (status IN
                ('received', 'in_progress', 'done', 'partly_done', 'rejected'));
        DROP INDEX shop.data_requests_open_idx;
        CREATE INDEX data_requests_open_idx ON shop.data_requests (received_at, request_id)
            WHERE status IN ('received', 'in_progress', 'partly_done');
        """
    )
