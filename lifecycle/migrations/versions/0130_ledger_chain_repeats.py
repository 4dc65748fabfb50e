"""Ledger chain, third form: what a row repeats from the row before it is hashed once, not again.

Revision ID: 0130
Revises: 0120

Form 2 (migration 0070) hashes every row's whole binary send form. A purge statement writes one
ledger row per order, and most of each row is the same for the whole statement: the run, the time,
the policy's version and hash, the action, the reason and the cleared columns (about 300 of its
~380 bytes). On a server without OpenSSL (the embedded one, 143 MB/s of SHA-256) hashing those
bytes was most of what the chain added to a purge: 3.5 µs a row, 1.11× the purge without the chain
on a quiet machine (docs/compliance.md, "The chain's write cost"; issue 16 allows 1.10×).

Form 3 splits each chained table's covered columns (the same columns as forms 1 and 2) into a key,
sent for every row, and the rest, sent only when it differs from the row before it in id order:

    for each row, in id order:  record_send(key) || 0x00                       (rest as before)
                                record_send(key) || 0x01 || record_send(rest)   (rest differs, first row)

`*=` compares the rest with the previous row's by their binary images (record_image_eq), so two
rests that are merely equal (numerics 1.0 and 1.00, a non-deterministic collation) are sent both.
The encoding is injective: the byte string decodes back to every row's covered columns (each
record delimits itself, the flag says whether a rest follows), so it binds every column of every
row exactly as form 2 does, and a row edited to repeat its predecessor changes the bytes too.
Links keep the form they were written in (`ledger_links.form`); forms 1 and 2 still verify.

The trigger's arguments gain the two row expressions (6th: key, 7th: rest), read back by
verification from pg_trigger as before.
"""

from alembic import op

revision = "0130"
down_revision = "0120"
branch_labels = None
depends_on = None

# chain table: (key columns, rest columns). Together exactly the columns forms 1 and 2 cover; the
# key holds what differs from row to row, the rest what one statement mostly repeats. A purge batch
# interleaves orders cleared for different reasons (about a third of its rows have another reason
# than the row before), so the reason is in the key: with it in the rest, those rows re-sent the
# whole rest (3.1 µs a row in the trigger against 2.1, embedded server, docs/compliance.md).
SPLITS = {
    "lifecycle.purge_ledger": (
        "ledger_id, order_id, reason",
        "run_id, purged_at, recorded_at, action, request_id, policy_version, policy_hash, "
        "cleared_columns",
    ),
    "lifecycle.request_actions": (
        "action_id, order_id",
        "request_id, run_id, recorded_at, action, columns, outcome, reason, detail",
    ),
    "lifecycle.erasure_runs": (
        "erasure_id",
        "run_id, started_at, finished_at, mechanism, tables, bytes_before, bytes_after",
    ),
    "lifecycle.alerts": ("alert_id", "raised_at, kind, dedupe_key, run_id, message"),
    "lifecycle.handoff_removals": (
        "removal_id",
        "run_id, recorded_at, carrier, reason, removed, order_ids",
    ),
}

_LINK_FUNCTION = r"""
CREATE OR REPLACE FUNCTION lifecycle.ledger_link() RETURNS trigger LANGUAGE plpgsql
SET work_mem = '64MB' AS $$
DECLARE
    chain_name text := TG_ARGV[0];
    n bigint; lo bigint; hi bigint; run text; content bytea; link_form smallint;
    head_seq bigint; head_hash bytea;
BEGIN
    -- Arguments: chain, id column, run-id column ('' for none), form-2 row bytes, form-1 row text,
    -- form-3 key row, form-3 rest row (migration 0130). The window sorts the statement's rows by
    -- id; the aggregate reads them in that order.
    IF TG_NARGS >= 7 THEN
        EXECUTE format(
            'SELECT count(*), min(ledger_link_i), max(ledger_link_i), min(ledger_link_r), '
            '       sha256(string_agg(CASE WHEN ledger_link_k *= ledger_link_p '
            '                              THEN ledger_link_b || ''\x00''::bytea '
            '                              ELSE ledger_link_b || ''\x01''::bytea || record_send(ledger_link_k) END, '
            '                         ''''::bytea)) '
            'FROM (SELECT %1$I AS ledger_link_i, %2$s AS ledger_link_r, record_send(%3$s) AS ledger_link_b, '
            '             %4$s AS ledger_link_k, lag(%4$s) OVER (ORDER BY %1$I) AS ledger_link_p '
            '      FROM new_rows) s',
            TG_ARGV[1], CASE WHEN TG_ARGV[2] = '' THEN 'NULL::text' ELSE quote_ident(TG_ARGV[2]) END,
            TG_ARGV[5], TG_ARGV[6])
          INTO n, lo, hi, run, content;
        link_form := 3;
    ELSE
        EXECUTE format(
            'SELECT count(*), min(ledger_link_i), max(ledger_link_i), min(ledger_link_r), '
            '       sha256(string_agg(%3$s, ''''::bytea)) '
            'FROM (SELECT %1$I AS ledger_link_i, %2$s AS ledger_link_r, * FROM new_rows ORDER BY %1$I) s',
            TG_ARGV[1], CASE WHEN TG_ARGV[2] = '' THEN 'NULL::text' ELSE quote_ident(TG_ARGV[2]) END,
            TG_ARGV[3])
          INTO n, lo, hi, run, content;
        link_form := 2;
    END IF;
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    SELECT link_seq, link_hash INTO head_seq, head_hash FROM lifecycle.ledger_links
     WHERE ledger_links.chain = chain_name ORDER BY link_seq DESC LIMIT 1;
    head_seq := coalesce(head_seq, 0) + 1;
    INSERT INTO lifecycle.ledger_links
        (chain, link_seq, first_id, last_id, rows, run_id, content_hash, prev_hash, link_hash, form)
    VALUES (chain_name, head_seq, lo, hi, n, run, content, head_hash,
            lifecycle.ledger_link_hash(chain_name, head_seq, lo, hi, n, content, head_hash), link_form);
    RETURN NULL;
END $$;
"""


def _arguments(table: str) -> list[str]:
    """The arguments `table`'s ledger_link trigger has now (chain, id, run id, forms 2 and 1)."""
    args = (
        op.get_bind()
        .exec_driver_sql(
            "SELECT tgargs FROM pg_trigger WHERE tgname = 'ledger_link' AND NOT tgisinternal "
            "AND tgrelid = CAST(%(t)s AS regclass)",
            {"t": table},
        )
        .scalar()
    )
    return bytes(args).decode().split("\x00")[:5]


def _names(columns: str) -> list[str]:
    return [c.strip() for c in columns.split(",")]


def _quoted(text: str) -> str:
    return "$arg$" + text + "$arg$"


def upgrade() -> None:
    op.execute(_LINK_FUNCTION)
    op.execute(
        "COMMENT ON COLUMN lifecycle.ledger_links.form IS "
        "'1: SHA-256 of the rows'' text digests (migration 0051); 2: of the rows'' binary form "
        "(0070); 3: of each row''s key and, when it differs from the row before, its rest (0130).'"
    )
    for table, (key, rest) in SPLITS.items():
        chain, id_column, run_column, binary, text = _arguments(table)
        covered = binary.removeprefix("record_send(ROW(").removesuffix("))")
        if sorted(_names(covered)) != sorted(_names(f"{key}, {rest}")):
            raise RuntimeError(f"{table}: form 3 must cover the columns form 2 covers ({covered})")
        args = ", ".join(
            _quoted(a)
            for a in (chain, id_column, run_column, binary, text, f"ROW({key})", f"ROW({rest})")
        )
        op.execute(
            f"""
            DROP TRIGGER ledger_link ON {table};
            CREATE TRIGGER ledger_link AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows
                FOR EACH STATEMENT EXECUTE FUNCTION lifecycle.ledger_link({args});
            """
        )


def downgrade() -> None:
    raise NotImplementedError(
        "0130 cannot be undone: links of form 3 would no longer verify under migration 0120"
    )
