"""Ledger seals: what a verification proved, so the next one re-hashes only the links added since.

Revision ID: 0120
Revises: 0110

A seal records, per chain, the links a verification found intact (up to `link_seq`, whose hash it
names), the id range and row count they cover, and the transaction horizon of the moment the
verification began (`horizon`, the next transaction id then, and `in_progress`, the ids still
running; both as 32-bit xids, what a row version's `xmin` holds). Any later SQL change to a row in
the sealed range (UPDATE, DELETE and INSERT, TRUNCATE and reload) leaves a row version whose xmin is
at or after the horizon or among `in_progress`, and a DELETE changes the count, so one pass over
the range reading no column proves it untouched (lifecycle/ledger/seals.py). `full_at` is when the
chain was last re-hashed in full. `seal_hash` is the SHA-256 of the other fields; the nightly check
records it in the run history, outside lifecycle.*, and verification trusts a seal only when its
hash matches that record. Ids, counts, hashes and transaction ids only.
"""

from alembic import op

revision = "0120"
down_revision = "0110"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE lifecycle.ledger_seals (
            seal_id     bigserial PRIMARY KEY,
            chain       text NOT NULL,
            link_seq    bigint NOT NULL,
            link_hash   bytea NOT NULL,
            first_id    bigint NOT NULL,
            last_id     bigint NOT NULL,
            rows        bigint NOT NULL,
            horizon     bigint NOT NULL,
            in_progress bigint[] NOT NULL,
            verified_at timestamptz NOT NULL,
            full_at     timestamptz NOT NULL,
            seal_hash   bytea NOT NULL
        );
        CREATE INDEX ledger_seals_chain_idx ON lifecycle.ledger_seals (chain, seal_id);
        COMMENT ON TABLE lifecycle.ledger_seals IS
            'What each nightly verification proved per chain (links, id range, row count, transaction '
            'horizon), anchored in the run history by seal_hash. Ids, counts and hashes only.';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE lifecycle.ledger_seals")
