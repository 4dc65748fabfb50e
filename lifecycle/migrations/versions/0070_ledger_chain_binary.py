"""Ledger chain, second form: one SHA-256 per link over the rows' binary form; hand-off removals chained.

Revision ID: 0070
Revises: 0060

Form 1 (migration 0051) hashed each row's `ROW(…)::text` (timestamps as epoch numerics) and then
the 32-byte digests: one SHA-256 call and one numeric rendering per row, about half of what the
chain added to a purge batch. Form 2 hashes, once per link, the concatenation of the rows'
`record_send(ROW(…))` in id order: the binary send form (type oid, length and bytes per column;
timestamps as microseconds), which no session setting changes and which delimits itself, so the
concatenation names every column of every row exactly. Links keep the form they were written in
(`ledger_links.form`), so a ledger written before this migration still verifies. The trigger
function sorts the statement's rows in memory (its own work_mem) instead of spilling to disk.

The carrier hand-off deletes rows every night; `lifecycle.handoff_removals` records each batch's
removals per carrier and reason (order ids and a count, never a removed value), written by the
refresh statement itself and chained like the other audit tables.
"""

from alembic import op

revision = "0070"
down_revision = "0060"
branch_labels = None
depends_on = None

# chain: (table, id column, run-id column, covered columns). The same columns as form 1 covers.
CHAINS = {
    "purge_ledger": (
        "lifecycle.purge_ledger",
        "ledger_id",
        "run_id",
        "ledger_id, run_id, order_id, purged_at, recorded_at, action, reason, request_id, "
        "policy_version, policy_hash, cleared_columns",
    ),
    "request_actions": (
        "lifecycle.request_actions",
        "action_id",
        "run_id",
        "action_id, request_id, run_id, recorded_at, action, order_id, columns, outcome, reason, "
        "detail",
    ),
    "erasure_runs": (
        "lifecycle.erasure_runs",
        "erasure_id",
        "run_id",
        "erasure_id, run_id, started_at, finished_at, mechanism, tables, bytes_before, bytes_after",
    ),
    "alerts": (
        "lifecycle.alerts",
        "alert_id",
        "run_id",
        "alert_id, raised_at, kind, dedupe_key, run_id, message",
    ),
    "handoff_removals": (
        "lifecycle.handoff_removals",
        "removal_id",
        "run_id",
        "removal_id, run_id, recorded_at, carrier, reason, removed, order_ids",
    ),
}

_LINK_FUNCTION = r"""
CREATE OR REPLACE FUNCTION lifecycle.ledger_link() RETURNS trigger LANGUAGE plpgsql
SET work_mem = '64MB' AS $$
DECLARE
    chain_name text := TG_ARGV[0];
    n bigint; lo bigint; hi bigint; run text; content bytea;
    head_seq bigint; head_hash bytea;
BEGIN
    -- Arguments: chain, id column, run-id column ('' for none), form-2 row bytes, form-1 row text.
    EXECUTE format(
        'SELECT count(*), min(i), max(i), min(r), sha256(string_agg(d, ''''::bytea)) '
        'FROM (SELECT %1$I AS i, %2$s AS r, %3$s AS d FROM new_rows ORDER BY %1$I) s', TG_ARGV[1],
        CASE WHEN TG_ARGV[2] = '' THEN 'NULL::text' ELSE quote_ident(TG_ARGV[2]) END, TG_ARGV[3])
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


def _legacy_canonical(table: str) -> str:
    """Form 1's row text for `table`, read back from the trigger migration 0051 created."""
    bind = op.get_bind()
    args = bind.exec_driver_sql(
        "SELECT tgargs FROM pg_trigger WHERE tgname = 'ledger_link' AND NOT tgisinternal "
        "AND tgrelid = CAST(%(t)s AS regclass)",
        {"t": table},
    ).scalar()
    return bytes(args).decode().split("\x00")[3] if args is not None else ""


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE lifecycle.ledger_links ADD COLUMN form smallint NOT NULL DEFAULT 1;
        COMMENT ON COLUMN lifecycle.ledger_links.form IS
            '1: SHA-256 of the rows'' text digests (migration 0051); 2: SHA-256 of the rows'' binary form.';

        CREATE TABLE lifecycle.handoff_removals (
            removal_id  bigserial PRIMARY KEY,
            run_id      text NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            carrier     text,
            reason      text NOT NULL,
            removed     bigint NOT NULL,
            order_ids   bigint[] NOT NULL
        );
        CREATE INDEX handoff_removals_run_id_idx ON lifecycle.handoff_removals (run_id);
        COMMENT ON TABLE lifecycle.handoff_removals IS
            'Append-only: the orders each hand-off refresh batch removed, per carrier and reason. Ids and counts only.';
        """
    )
    op.execute(_LINK_FUNCTION)
    for chain, (table, id_column, run_column, columns) in CHAINS.items():
        binary = f"record_send(ROW({columns}))"
        # A chain created here has no form-1 links; its text form only keeps the query well-typed.
        legacy = _legacy_canonical(table) or f"ROW({columns})::text"
        op.execute(
            f"""
            DROP TRIGGER IF EXISTS ledger_lock ON {table};
            DROP TRIGGER IF EXISTS ledger_link ON {table};
            CREATE TRIGGER ledger_lock BEFORE INSERT ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION lifecycle.ledger_lock('{chain}');
            CREATE TRIGGER ledger_link AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows
                FOR EACH STATEMENT EXECUTE FUNCTION lifecycle.ledger_link(
                    '{chain}', '{id_column}', '{run_column}', $form${binary}$form$, $form${legacy}$form$);
            """
        )


def downgrade() -> None:
    raise NotImplementedError(
        "0070 cannot be undone: links of form 2 would no longer verify under migration 0051"
    )
