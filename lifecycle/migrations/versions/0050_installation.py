"""When lifecycle was installed on this shop: the report judges nights only from then on.

Revision ID: 0050
Revises: 0041
"""

from alembic import op

revision = "0050"
down_revision = "0041"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A shop that ran before this migration existed is judged from its first recorded run
    # (the report takes the earlier of the two), so upgrading hides none of its missed nights.
    op.execute(
        """
        CREATE TABLE lifecycle.installation (
            installed_at timestamptz NOT NULL DEFAULT now()
        );
        INSERT INTO lifecycle.installation DEFAULT VALUES;
        COMMENT ON TABLE lifecycle.installation IS
            'One row: when the schemas were first created; nights before it are not judged.';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE lifecycle.installation")
