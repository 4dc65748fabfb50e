"""The guard's reader: a login role that reads the analytics zone as an analyst and nothing more.

Code an analytics author planted (a view calling their own function) runs with the rights of
whoever reads the view. `SET ROLE` is no barrier to it: the planted code can `RESET ROLE` back
to the session's user. So the guard reads analytics over a connection that logs in as this role:
its session user is the role itself, a member of `lifecycle_analyst` only, no superuser, no
CREATEDB or CREATEROLE, so there is nothing to return to. The migration sets no password: on a
server that authenticates by password the operator sets one (`ALTER ROLE lifecycle_guard_reader
PASSWORD ...`) and gives it to the guard as LIFECYCLE_GUARD_READER_PASSWORD (docs/guard.md).

Roles are cluster-wide, created only when missing, tolerating another database's migration
creating it at the same moment (as 0004 does).

Revision ID: 0040
Revises: 0033
"""

from alembic import op

revision = "0040"
down_revision = "0033"
branch_labels = None
depends_on = None

READER = "lifecycle_guard_reader"
ANALYST = "lifecycle_analyst"

_CREATE_READER = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{READER}') THEN
        CREATE ROLE {READER} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
        COMMENT ON ROLE {READER} IS
            'The leak guard reads analytics as this login: an analyst, nothing more.';
    END IF;
    IF NOT pg_has_role('{READER}', '{ANALYST}', 'MEMBER') THEN
        GRANT {ANALYST} TO {READER};
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- made a moment ago by the migration of another database on this cluster
END
$$
"""


def upgrade() -> None:
    op.execute(_CREATE_READER)


def downgrade() -> None:
    # The role stays: other databases on the cluster may still use it.
    pass
