"""Ledger chain: the trigger builds each row's rest once, after one sort of the narrow rows.

Revision ID: 0150
Revises: 0140

Same links, same bytes: only how `lifecycle.ledger_link()` computes a form-3 link changes
(migration 0130 says what a link hashes). Before, the window `lag(ROW(rest)) OVER (ORDER BY id)`
sorted the transition table's whole rows and built each row's rest twice, once for the row
itself and once more when the next row's `lag` read it. Now a subquery builds, per row, the id,
the run id, the key's send form and the rest row, sorts those by id, and the window reads the
previous row's rest from its input (presorted, so it does not sort again).

Measured on the embedded server (no OpenSSL) with EXPLAIN ANALYZE's trigger time for 43,916
purge-like rows in one statement, the two bodies alternating 12 times: median 99.0 ms → 89.6 ms,
fastest 88.1 → 78.6 ms (about 10% of the trigger; its share of a purge, bench/RESULTS.md
"ledger"). `tests/db/test_ledger.py` recomputes a form-3 link byte for byte in Python, so the
bytes are held to what 0130 documents.
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0150"
down_revision = "0140"
branch_labels = None
depends_on = None

_LINK_FUNCTION = r"""
CREATE OR REPLACE FUNCTION lifecycle.ledger_link() RETURNS trigger LANGUAGE plpgsql
SET work_mem = '64MB' AS $$
DECLARE
    chain_name text := TG_ARGV[0];
    n bigint; lo bigint; hi bigint; run text; content bytea; link_form smallint;
    head_seq bigint; head_hash bytea;
BEGIN
    -- Arguments: chain, id column, run-id column ('' for none), form-2 row bytes, form-1 row text,
    -- form-3 key row, form-3 rest row (migration 0130). The subquery builds each row's key bytes
    -- and rest once and sorts them by id (migration 0150); the window reads the row before's rest
    -- from its presorted input, and the aggregate reads the rows in that order.
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
            '            FROM new_rows ORDER BY 1 OFFSET 0) q) s',
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


def upgrade() -> None:
    op.execute(_LINK_FUNCTION)


def downgrade() -> None:
    """Back to 0130's body (the same links, computed the slower way)."""
    path = Path(__file__).with_name("0130_ledger_chain_repeats.py")
    spec = importlib.util.spec_from_file_location("ledger_chain_repeats_0130", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    op.execute(module._LINK_FUNCTION)
