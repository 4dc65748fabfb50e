"""Ledger seals: what a verification proved, so the next one re-hashes only the links added since.

Revision ID: 0120
Revises: 0110

A seal records, per chain, the links a verification found intact (up to `link_seq`, whose hash it
names), the id range and row count they cover, and the transaction horizon of the moment the
verification began (`horizon`, the next transaction id then, and `in_progress`, the ids still
running; both as full 64-bit transaction ids, epoch and xid, whose low 32 bits are what a row
version's `xmin` holds). Any later SQL change to a row in the sealed range (UPDATE, DELETE and
INSERT, TRUNCATE and reload) leaves a row version whose xmin is at or after the horizon or among
`in_progress`, and a DELETE changes the count, so one pass over the range reading no column proves
it untouched (lifecycle/ledger/seals.py). That proof holds only in the database whose row versions
the seal saw, so the seal names it: `system_id`, the cluster's system identifier from
pg_control_system() (NULL when the job's role may not read it: such a seal is never used), and
`database_oid`; a seal is used only there, and only while its 64-bit horizon is not ahead of that
cluster's transaction counter (a restored dump or a counter set back re-hashes the chain in full
instead). `full_at` is when the chain was last re-hashed in full. `seal_hash` is the SHA-256 of the
other fields; the nightly check records it in the run history, outside lifecycle.*, and verification
trusts a seal only when its hash matches that record. Ids, counts, hashes and transaction ids only.

The link trigger's function is also replaced by one that sorts the statement's stored rows by id
before building their binary form, instead of sorting rows that already carry their serialised
bytes: the same bytes in the same order, so the same content hash, with a narrower sort
(bench/RESULTS.md, ledger).
"""

from alembic import op

revision = "0120"
down_revision = "0110"
branch_labels = None
depends_on = None

_LINK_FUNCTION = r"""
CREATE OR REPLACE FUNCTION lifecycle.ledger_link() RETURNS trigger LANGUAGE plpgsql
SET work_mem = '64MB' AS $$
DECLARE
    chain_name text := TG_ARGV[0];
    n bigint; lo bigint; hi bigint; run text; content bytea;
    head_seq bigint; head_hash bytea;
BEGIN
    -- Arguments: chain, id column, run-id column ('' for none), form-2 row bytes, form-1 row text.
    -- The rows are sorted by id first, then serialised in that order inside the aggregate.
    EXECUTE format(
        'SELECT count(*), min(ledger_link_i), max(ledger_link_i), min(ledger_link_r), '
        '       sha256(string_agg(%3$s, ''''::bytea)) '
        'FROM (SELECT %1$I AS ledger_link_i, %2$s AS ledger_link_r, * FROM new_rows ORDER BY %1$I) s',
        TG_ARGV[1], CASE WHEN TG_ARGV[2] = '' THEN 'NULL::text' ELSE quote_ident(TG_ARGV[2]) END,
        TG_ARGV[3])
      INTO n, lo, hi, run, content;
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    SELECT link_seq, link_hash INTO head_seq, head_hash FROM lifecycle.ledger_links
     WHERE ledger_links.chain = chain_name ORDER BY link_seq DESC LIMIT 1;
    head_seq := coalesce(head_seq, 0) + 1;
    INSERT INTO lifecycle.ledger_links
        (chain, link_seq, first_id, last_id, rows, run_id, content_hash, prev_hash, link_hash, form)
    VALUES (chain_name, head_seq, lo, hi, n, run, content, head_hash,
            lifecycle.ledger_link_hash(chain_name, head_seq, lo, hi, n, content, head_hash), 2);
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.execute(_LINK_FUNCTION)
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
            system_id   bigint,
            database_oid bigint NOT NULL,
            seal_hash   bytea NOT NULL
        );
        CREATE INDEX ledger_seals_chain_idx ON lifecycle.ledger_seals (chain, seal_id);
        COMMENT ON TABLE lifecycle.ledger_seals IS
            'What each nightly verification proved per chain (links, id range, row count, transaction '
            'horizon, cluster and database identity), anchored in the run history by seal_hash. Ids, '
            'counts and hashes only.';
        """
    )


def downgrade() -> None:
    raise NotImplementedError(
        "0120 is not undone: drop lifecycle.ledger_seals and re-run 0070's ledger_link function by hand"
    )
