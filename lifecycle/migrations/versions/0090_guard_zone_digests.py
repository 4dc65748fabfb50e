"""The analytics zone's token digests, kept between nights, so the fingerprint scan compares a raw
value added tonight with relations that did not change without reading them again
(lifecycle.guard.changes, docs/guard.md "Scans that follow the night's work").

Keyed HMAC-SHA256 digests and masked forms only, never a value; the key lives outside the
database, and a new key replaces them all.

Revision ID: 0090
Revises: 0070
"""

from alembic import op

revision = "0090"
down_revision = "0070"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE lifecycle.guard_zone_digests (
            relation    text NOT NULL,
            column_name text NOT NULL,
            kind        text NOT NULL,
            len         int NOT NULL,
            h           bytea NOT NULL,
            mask        text NOT NULL
        );
        CREATE INDEX guard_zone_digests_relation_idx ON lifecycle.guard_zone_digests (relation);
        COMMENT ON TABLE lifecycle.guard_zone_digests IS
            'Keyed digests of the analytics tokens the fingerprint scan last read, per relation.';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE lifecycle.guard_zone_digests")
