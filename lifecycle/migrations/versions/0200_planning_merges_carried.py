"""Planning tables: the cells each build merged, so a rebuild in the same week starts from them.

A late order or correction in the planning span rebuilds both planning tables, and a cold build
finds its merges again round by round (5-7 rounds, each auditing the span). The same week's
previous build already found nearly all of them, so lifecycle.planning_builds now keeps, beside
the hash, the cell keys (period, product line, sku, region: catalogue codes, no person) the build
merged and the rules they were merged under; a rebuild for the same Sunday under the same rules
starts merged where the last one ended (lifecycle/sales/freshness.py, docs/sales.md).

Revision ID: 0200
Revises: 0190
"""

from alembic import op

revision = "0200"
down_revision = "0190"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE lifecycle.planning_builds
            ADD COLUMN merged_cells text[] NOT NULL DEFAULT '{}',
            ADD COLUMN merged_under text NOT NULL DEFAULT '';
        COMMENT ON COLUMN lifecycle.planning_builds.merged_cells IS
            'Cell keys the last build merged upward (catalogue codes and periods, no person).';
        COMMENT ON COLUMN lifecycle.planning_builds.merged_under IS
            'The rules those cells were merged under; another rule set starts from none.';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE lifecycle.planning_builds DROP COLUMN merged_cells, DROP COLUMN merged_under
        """
    )
