"""The cleared orders that still hold a personal value, indexed: the purge's re-clear and the check
`cleared_orders_hold_no_personal_data` then cost what is left to clear (nothing on a healthy
shop), not the table's size (docs/retention.md, "What a night costs").

Two partial indexes, following the reference contract's personal columns as 0110 follows its
`purged_at` column (a column the table does not have is left out; a table without `purged_at` or
without any of them gets no index):
  - shop.orders (order_id) WHERE purged_at IS NOT NULL AND (<personal column> IS NOT NULL OR …):
    empty while every cleared order is cleared;
  - shop.after_sales_cases (order_id) WHERE note IS NOT NULL: the cases still holding a note, which
    on a healthy shop are those of orders not cleared yet (the orders in flight).
The purge and the check (lifecycle/retention/rules.py, `values_left_ids`) read the orders' side as
`purged_at IS NOT NULL AND (… IS NOT NULL OR …)` over the policy's personal columns; PostgreSQL
uses the index whenever the policy's columns are among the index's (a policy naming a column the
index lacks is still answered, by a scan of the table: create the index on its columns, as
docs/deployment.md shows). Built in the migration's transaction, which blocks writes to the two
tables while it builds (the orders' index is empty on a healthy shop, the cases' one is small); a
DBA may build them first with CREATE INDEX CONCURRENTLY and this migration keeps them.

Revision ID: 0140
Revises: 0130
"""

from alembic import op

revision = "0140"
down_revision = "0130"
branch_labels = None
depends_on = None

# The reference contract's personal columns at this revision (lifecycle/policy/raw.py,
# DEFAULT_PERSONAL), written out so the migration does not change when the code does.
_ORDERS_PERSONAL = (
    "receiver_name",
    "receiver_phone",
    "receiver_email",
    "receiver_address",
    "receiver_postcode",
    "payment_ref",
)
_CASES_PERSONAL = ("note",)


def _held(table: str, columns: tuple[str, ...]) -> str:
    """PL/pgSQL: the `<col> IS NOT NULL OR …` of the columns the table has, in the given order,
    into `held` (NULL when it has none)."""
    listed = ", ".join(f"'{c}'" for c in columns)
    return f"""
        SELECT string_agg(format('%I IS NOT NULL', c.name), ' OR ' ORDER BY c.pos) INTO held
        FROM unnest(ARRAY[{listed}]) WITH ORDINALITY AS c(name, pos)
        WHERE EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'shop'
                      AND table_name = '{table}' AND column_name = c.name);"""


def upgrade() -> None:
    op.execute(
        f"""
        DO $$
        DECLARE held text;
        BEGIN
            IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'shop'
                       AND table_name = 'orders' AND column_name = 'purged_at') THEN
                {_held("orders", _ORDERS_PERSONAL)}
                IF held IS NOT NULL THEN
                    EXECUTE format('CREATE INDEX IF NOT EXISTS orders_values_left_idx ON shop.orders '
                                   '(order_id) WHERE purged_at IS NOT NULL AND (%s)', held);
                END IF;
            END IF;
            {_held("after_sales_cases", _CASES_PERSONAL)}
            IF held IS NOT NULL THEN
                EXECUTE format('CREATE INDEX IF NOT EXISTS after_sales_cases_values_held_idx '
                               'ON shop.after_sales_cases (order_id) WHERE %s', held);
            END IF;
        END $$;
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS shop.orders_values_left_idx")
    op.execute("DROP INDEX IF EXISTS shop.after_sales_cases_values_held_idx")
