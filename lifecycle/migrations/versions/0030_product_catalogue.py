"""The product catalogue: which product line each sku belongs to (non-personal).

Mapped in the policy as the optional raw.catalogue; the planning tables roll a sku that is too
small to show up to its product line (docs/sales.md).

Revision ID: 0030
Revises: 0010
"""

from alembic import op

revision = "0030"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS shop.products (
            sku          text PRIMARY KEY,
            product_line text NOT NULL
        );
        COMMENT ON TABLE shop.products IS
            'The catalogue: which product line each sku belongs to (no personal data).';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS shop.products")
