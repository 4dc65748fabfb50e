"""Planning tables: what each was last built from, so a night with nothing new rebuilds nothing.

lifecycle.planning_builds keeps, per planning table, the last complete day it was built for and a
hash of everything its figures depend on (the build rules, the daily table's per-day build times
over its span, the catalogue, and for weekly_demand the summary it was merged against). A build
whose hash is unchanged leaves the table as it is (lifecycle/sales/freshness.py).

Revision ID: 0100
Revises: 0090
"""

from alembic import op

revision = "0100"
down_revision = "0090"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE lifecycle.planning_builds (
            table_name text PRIMARY KEY,
            as_of_date date NOT NULL,
            signature text NOT NULL,
            built_at timestamptz NOT NULL DEFAULT now()
        );
        COMMENT ON TABLE lifecycle.planning_builds IS
            'Per planning table: the day and source hash of its last build (counts only).';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE lifecycle.planning_builds")
