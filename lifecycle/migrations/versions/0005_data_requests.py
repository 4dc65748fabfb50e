"""Customers' data requests (shop.data_requests) and their audit trail (lifecycle.*).

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # `kind` is plain text on purpose: the website may send a kind that does not exist, and the
    # handler must be able to reject it with a reason instead of the insert failing.
    op.execute(
        """
        CREATE TABLE shop.data_requests (
            request_id   bigint PRIMARY KEY,
            customer_id  bigint NOT NULL,
            kind         text NOT NULL,
            payload      jsonb,
            received_at  timestamptz NOT NULL DEFAULT now(),
            status       text NOT NULL DEFAULT 'received'
                         CHECK (status IN ('received', 'in_progress', 'done', 'partly_done', 'rejected')),
            completed_at timestamptz,
            result       jsonb
        );
        CREATE INDEX data_requests_open_idx ON shop.data_requests (received_at, request_id)
            WHERE status IN ('received', 'in_progress', 'partly_done');
        CREATE INDEX data_requests_customer_idx ON shop.data_requests (customer_id, kind);
        COMMENT ON TABLE shop.data_requests IS
            'Access, correction and erasure requests: the website inserts, lifecycle answers in status/result.';
        """
    )
    op.execute(
        """
        CREATE TABLE lifecycle.pending_erasures (
            request_id     bigint NOT NULL,
            order_id       bigint NOT NULL,
            waiting_for    text NOT NULL,
            recorded_at    timestamptz NOT NULL DEFAULT now(),
            erasable_from  timestamptz,
            erased_at      timestamptz,
            PRIMARY KEY (request_id, order_id)
        );
        CREATE INDEX pending_erasures_open_idx ON lifecycle.pending_erasures (request_id)
            WHERE erased_at IS NULL;
        COMMENT ON TABLE lifecycle.pending_erasures IS
            'Orders an erasure request could not clear yet (in delivery, open case): ids, codes and dates only.';

        CREATE TABLE lifecycle.request_actions (
            action_id    bigserial PRIMARY KEY,
            request_id   bigint NOT NULL,
            run_id       text NOT NULL,
            recorded_at  timestamptz NOT NULL DEFAULT now(),
            action       text NOT NULL,
            order_id     bigint,
            columns      text[] NOT NULL DEFAULT '{}',
            outcome      text NOT NULL,
            reason       text,
            detail       jsonb
        );
        CREATE INDEX request_actions_request_idx ON lifecycle.request_actions (request_id);

        -- An erasure reads back the orders it cleared by request id; without this the lookup would
        -- go through run_id, which on the night of a large purge names hundreds of thousands of rows.
        CREATE INDEX IF NOT EXISTS purge_ledger_request_id_idx ON lifecycle.purge_ledger (request_id)
            WHERE request_id IS NOT NULL;
        COMMENT ON TABLE lifecycle.request_actions IS
            'Every request action (export, correction, rejection, pending erasure): ids, column names '
            'and codes only, never a personal value. Cleared orders are in purge_ledger.';
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS lifecycle.purge_ledger_request_id_idx")
    op.execute("DROP TABLE lifecycle.request_actions, lifecycle.pending_erasures")
    op.execute("DROP TABLE shop.data_requests")
