"""Hash-chained audit trail: every insert into a ledger table is linked to the one before it.

Revision ID: 0051
Revises: 0050
"""

from alembic import op

revision = "0051"
down_revision = "0050"
branch_labels = None
depends_on = None

# chain: (table, id column, run-id column, canonical row text). A link's content hash is
# the SHA-256 of its rows' SHA-256 digests in id order (a 32-byte digest per row keeps the
# aggregate small; hashing the whole text at once cost 2× more here). The canonical text holds
# only columns written once, at insert (alerts' delivery fields change later), with timestamps
# as epoch seconds so no session setting (TimeZone, DateStyle) changes it.
CHAINS = {
    "purge_ledger": (
        "lifecycle.purge_ledger",
        "ledger_id",
        "run_id",
        "ROW(ledger_id, run_id, order_id, extract(epoch FROM purged_at), extract(epoch FROM recorded_at), "
        "action, reason, request_id, policy_version, policy_hash, cleared_columns)::text",
    ),
    "request_actions": (
        "lifecycle.request_actions",
        "action_id",
        "run_id",
        "ROW(action_id, request_id, run_id, extract(epoch FROM recorded_at), action, order_id, columns, "
        "outcome, reason, detail)::text",
    ),
    "erasure_runs": (
        "lifecycle.erasure_runs",
        "erasure_id",
        "run_id",
        "ROW(erasure_id, run_id, extract(epoch FROM started_at), extract(epoch FROM finished_at), "
        "mechanism, tables, bytes_before, bytes_after)::text",
    ),
    "alerts": (
        "lifecycle.alerts",
        "alert_id",
        "run_id",
        "ROW(alert_id, extract(epoch FROM raised_at), kind, dedupe_key, run_id, message)::text",
    ),
}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def upgrade() -> None:
    op.execute(
        r"""
        CREATE TABLE lifecycle.ledger_links (
            chain        text NOT NULL,
            link_seq     bigint NOT NULL,
            first_id     bigint NOT NULL,
            last_id      bigint NOT NULL,
            rows         bigint NOT NULL,
            run_id       text,
            recorded_at  timestamptz NOT NULL DEFAULT now(),
            content_hash bytea NOT NULL,
            prev_hash    bytea,
            link_hash    bytea NOT NULL,
            PRIMARY KEY (chain, link_seq)
        );
        COMMENT ON TABLE lifecycle.ledger_links IS
            'One link per insert statement into a chained table: its id range, row count, the SHA-256 '
            'of its rows and of the previous link. Ids, counts and hashes only.';

        CREATE FUNCTION lifecycle.ledger_link_hash(
            chain text, link_seq bigint, first_id bigint, last_id bigint, rows bigint,
            content_hash bytea, prev_hash bytea
        ) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
            SELECT sha256(convert_to(concat_ws('|', chain, link_seq, first_id, last_id, rows,
                encode(content_hash, 'hex'), coalesce(encode(prev_hash, 'hex'), '')), 'UTF8'))
        $$;

        -- Before any row of the statement takes an id: one writer per chain at a time, so the ids
        -- of one statement are never interleaved with another's and its link follows the last one.
        CREATE FUNCTION lifecycle.ledger_lock() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock(4711051, hashtext(TG_ARGV[0]));
            RETURN NULL;
        END $$;

        -- After the statement: one aggregate over its new rows (no per-row work) and one link.
        -- Arguments: chain, id column, run-id column ('' for none), canonical row text; they live
        -- only here, in the trigger, and verification reads them back from pg_trigger.
        CREATE FUNCTION lifecycle.ledger_link() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            chain_name text := TG_ARGV[0];
            n bigint; lo bigint; hi bigint; run text; content bytea;
            head_seq bigint; head_hash bytea;
        BEGIN
            EXECUTE format(
                'SELECT count(*), min(%1$I), max(%1$I), min(%2$s), '
                'sha256(string_agg(sha256(textsend(%3$s)), ''''::bytea ORDER BY %1$I)) '
                'FROM new_rows', TG_ARGV[1],
                CASE WHEN TG_ARGV[2] = '' THEN 'NULL::text' ELSE quote_ident(TG_ARGV[2]) END, TG_ARGV[3])
              INTO n, lo, hi, run, content;
            IF n = 0 THEN
                RETURN NULL;
            END IF;
            SELECT link_seq, link_hash INTO head_seq, head_hash FROM lifecycle.ledger_links
             WHERE ledger_links.chain = TG_ARGV[0] ORDER BY link_seq DESC LIMIT 1;
            head_seq := coalesce(head_seq, 0) + 1;
            INSERT INTO lifecycle.ledger_links
                (chain, link_seq, first_id, last_id, rows, run_id, content_hash, prev_hash, link_hash)
            VALUES (chain_name, head_seq, lo, hi, n, run, content, head_hash,
                    lifecycle.ledger_link_hash(chain_name, head_seq, lo, hi, n, content, head_hash));
            RETURN NULL;
        END $$;
        """
    )
    for chain, (table, id_column, run_column, canonical) in CHAINS.items():
        # The rows already there form the chain's first link.
        op.execute(
            f"""
            INSERT INTO lifecycle.ledger_links
                (chain, link_seq, first_id, last_id, rows, run_id, content_hash, prev_hash, link_hash)
            SELECT '{chain}', 1, lo, hi, n, run, content,
                   NULL, lifecycle.ledger_link_hash('{chain}', 1, lo, hi, n, content, NULL)
            FROM (SELECT count(*) AS n, min({id_column}) AS lo, max({id_column}) AS hi,
                         min({run_column}) AS run,
                         sha256(string_agg(sha256(textsend({canonical})), ''::bytea ORDER BY {id_column})) AS content
                  FROM {table}) x
            WHERE n > 0;
            CREATE TRIGGER ledger_lock BEFORE INSERT ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION lifecycle.ledger_lock('{chain}');
            CREATE TRIGGER ledger_link AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows
                FOR EACH STATEMENT EXECUTE FUNCTION lifecycle.ledger_link(
                    '{chain}', '{id_column}', '{run_column}', {_literal(canonical)});
            """
        )


def downgrade() -> None:
    for table, *_rest in CHAINS.values():
        op.execute(f"DROP TRIGGER ledger_lock ON {table}; DROP TRIGGER ledger_link ON {table}")
    op.execute(
        "DROP FUNCTION lifecycle.ledger_link(), lifecycle.ledger_lock(); "
        "DROP FUNCTION lifecycle.ledger_link_hash(text, bigint, bigint, bigint, bigint, bytea, bytea); "
        "DROP TABLE lifecycle.ledger_links"
    )
