"""Ledger chain: the trigger reads the statement's rows from the table, not a transition table.

Revision ID: 0170
Revises: 0160

Same links, same bytes (form 3, migration 0130): only where `lifecycle.ledger_link()` finds the
statement's rows changes. A trigger declared `REFERENCING NEW TABLE` makes PostgreSQL copy every
inserted row into a tuplestore while the statement runs, and it does so whether or not the trigger
is enabled. Measured on a purge-like statement of 220,000 rows (embedded server): about 0.5–0.7 µs
a row, some 2% of a backlog purge, which put the chain at 10–11% of a purge against issue 16's 10%.

The rows are found without that copy. `ledger_lock`, a BEFORE STATEMENT trigger, takes the chain's
transaction-scoped advisory lock before the statement draws its first id, so until the
transaction ends no other writer of the chain draws an id or inserts a row, and the ids the
statement draws (bigserial, cache 1) are above every id drawn before. Every row above the chain's
head link (`ledger_links.last_id`) is therefore the statement's, and the AFTER STATEMENT trigger
reads them by a primary-key range scan, which also delivers them in id order (no sort). The lock
already made the chain depend on that ordering: verification re-hashes each link's rows by id
range, and flags rows between or above links.

What this does not change: a writer with INSERT alone goes through both triggers as before. Rows
placed above the head without the triggers (disabled by the table's owner, or
`session_replication_role = replica`, both owner or superuser powers) used to stay outside every
link and be flagged as strays; now the next statement links them. Those powers can write links
too, so the chain never rested on them; what it rests on is the anchor of each night's head in
Dagster's run history (docs/compliance.md).

The planner is told to read the range through the primary key (no sequential or bitmap scan for
the function's statements): the rows just inserted are at the end of the heap and of the index,
and a sequential scan of a million-row ledger to find a night's rows is what the transition table
avoided.
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0170"
down_revision = "0160"
branch_labels = None
depends_on = None

CHAINED = (
    "lifecycle.purge_ledger",
    "lifecycle.request_actions",
    "lifecycle.erasure_runs",
    "lifecycle.alerts",
    "lifecycle.handoff_removals",
)

_LINK_FUNCTION = r"""
CREATE OR REPLACE FUNCTION lifecycle.ledger_link() RETURNS trigger LANGUAGE plpgsql
SET work_mem = '64MB' SET enable_seqscan = off SET enable_bitmapscan = off AS $$
DECLARE
    chain_name text := TG_ARGV[0];
    n bigint; lo bigint; hi bigint; run text; content bytea; link_form smallint;
    head_seq bigint; head_hash bytea; head_last bigint;
BEGIN
    -- Arguments: chain, id column, run-id column ('' for none), form-2 row bytes, form-1 row text,
    -- form-3 key row, form-3 rest row (migration 0130). The statement's rows are the rows above
    -- the head link (migration 0170), read in id order from the primary key; the subquery builds
    -- each row's key bytes and rest once, and the window reads the row before's rest from it.
    SELECT link_seq, link_hash, last_id INTO head_seq, head_hash, head_last
      FROM lifecycle.ledger_links
     WHERE ledger_links.chain = chain_name ORDER BY link_seq DESC LIMIT 1;
    IF TG_NARGS >= 7 THEN
        EXECUTE format(
            'SELECT count(*), min(ledger_link_i), max(ledger_link_i), min(ledger_link_r), '
            '       sha256(string_agg(CASE WHEN ledger_link_k *= ledger_link_p '
            '                              THEN ledger_link_b || ''\x00''::bytea '
            '                              ELSE ledger_link_b || ''\x01''::bytea || record_send(ledger_link_k) END, '
            '                         ''''::bytea)) '
            'FROM (SELECT ledger_link_i, ledger_link_r, ledger_link_b, ledger_link_k, '
            '             lag(ledger_link_k) OVER (ORDER BY ledger_link_i) AS ledger_link_p '
            '      FROM (SELECT %1$I AS ledger_link_i, %2$s AS ledger_link_r, '
            '                   record_send(%3$s) AS ledger_link_b, %4$s AS ledger_link_k '
            '            FROM %5$I.%6$I WHERE %1$I > $1 ORDER BY %1$I OFFSET 0) q) s',
            TG_ARGV[1], CASE WHEN TG_ARGV[2] = '' THEN 'NULL::text' ELSE quote_ident(TG_ARGV[2]) END,
            TG_ARGV[5], TG_ARGV[6], TG_TABLE_SCHEMA, TG_TABLE_NAME)
          INTO n, lo, hi, run, content
          USING coalesce(head_last, -9223372036854775808);
        link_form := 3;
    ELSE
        EXECUTE format(
            'SELECT count(*), min(ledger_link_i), max(ledger_link_i), min(ledger_link_r), '
            '       sha256(string_agg(%3$s, ''''::bytea)) '
            'FROM (SELECT %1$I AS ledger_link_i, %2$s AS ledger_link_r, * FROM %4$I.%5$I '
            '      WHERE %1$I > $1 ORDER BY %1$I) s',
            TG_ARGV[1], CASE WHEN TG_ARGV[2] = '' THEN 'NULL::text' ELSE quote_ident(TG_ARGV[2]) END,
            TG_ARGV[3], TG_TABLE_SCHEMA, TG_TABLE_NAME)
          INTO n, lo, hi, run, content
          USING coalesce(head_last, -9223372036854775808);
        link_form := 2;
    END IF;
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    head_seq := coalesce(head_seq, 0) + 1;
    INSERT INTO lifecycle.ledger_links
        (chain, link_seq, first_id, last_id, rows, run_id, content_hash, prev_hash, link_hash, form)
    VALUES (chain_name, head_seq, lo, hi, n, run, content, head_hash,
            lifecycle.ledger_link_hash(chain_name, head_seq, lo, hi, n, content, head_hash), link_form);
    RETURN NULL;
END $$;
"""


def _arguments(table: str) -> list[str]:
    """Every argument `table`'s ledger_link trigger has now, as verification reads them back."""
    args = (
        op.get_bind()
        .exec_driver_sql(
            "SELECT tgargs FROM pg_trigger WHERE tgname = 'ledger_link' AND NOT tgisinternal "
            "AND tgrelid = CAST(%(t)s AS regclass)",
            {"t": table},
        )
        .scalar()
    )
    return bytes(args).decode().split("\x00")[:-1]


def _recreate_triggers(referencing: str) -> None:
    for table in CHAINED:
        args = ", ".join("$arg$" + a + "$arg$" for a in _arguments(table))
        op.execute(
            f"""
            DROP TRIGGER ledger_link ON {table};
            CREATE TRIGGER ledger_link AFTER INSERT ON {table} {referencing}
                FOR EACH STATEMENT EXECUTE FUNCTION lifecycle.ledger_link({args});
            """
        )


def _refuse_unlinked_rows() -> None:
    """Rows above a head link would be linked by the next statement: stop instead (verification
    already calls them strays; `lifecycle ledger verify` names the first)."""
    for table in CHAINED:
        chain, id_column = _arguments(table)[:2]
        stray = (
            op.get_bind()
            .exec_driver_sql(
                f"SELECT min({id_column}) FROM {table} WHERE {id_column} > coalesce("
                "(SELECT max(last_id) FROM lifecycle.ledger_links WHERE chain = %(c)s), "
                "-9223372036854775808)",
                {"c": chain},
            )
            .scalar()
        )
        if stray is not None:
            raise RuntimeError(
                f"{table}: row {stray} and any after it are in no ledger link; run "
                "`lifecycle ledger verify` and resolve the break before upgrading"
            )


def upgrade() -> None:
    _refuse_unlinked_rows()
    op.execute(_LINK_FUNCTION)
    _recreate_triggers("")


def downgrade() -> None:
    """Back to 0150's body and triggers that capture the statement's rows (the same links)."""
    path = Path(__file__).with_name("0150_ledger_link_rest_once.py")
    spec = importlib.util.spec_from_file_location("ledger_link_rest_once_0150", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    op.execute(module._LINK_FUNCTION)
    _recreate_triggers("REFERENCING NEW TABLE AS new_rows")
