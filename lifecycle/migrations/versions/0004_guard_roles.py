"""Least-privilege roles: analysts read `analytics` only; the nightly job's role holds the raw zone.

Roles are cluster-wide: they are created only when missing, and a migration of another database
creating the same role at the same moment is tolerated. Grants and default privileges are
per-database, so they are (re)made here for this database every time. Both roles are NOLOGIN
groups: people and the job log in as their own users and are granted membership
(`GRANT lifecycle_analyst TO alice`), so no shared password exists. See docs/guard.md.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ANALYST = "lifecycle_analyst"
JOB = "lifecycle_job"
JOB_SCHEMAS = "shop, lifecycle, analytics"

_CREATE_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
        CREATE ROLE {role} NOLOGIN;
        COMMENT ON ROLE {role} IS '{comment}';
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- created a moment ago by the migration of another database on this cluster
END
$$
"""

# A migrating user that is not a superuser needs the job role to set its default privileges.
_JOIN_JOB_ROLE = f"""
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, '{JOB}', 'MEMBER') THEN
        EXECUTE format('GRANT {JOB} TO %I', current_user);
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$
"""


def upgrade() -> None:
    op.execute(
        "CREATE SCHEMA IF NOT EXISTS analytics"
    )  # 0002 builds its tables here, in either order
    op.execute(
        _CREATE_ROLE.format(
            role=ANALYST,
            comment="Reads the analytics zone only; never shop.*, lifecycle.* or logistics.*.",
        )
    )
    op.execute(
        _CREATE_ROLE.format(
            role=JOB,
            comment="The nightly lifecycle job: holds the raw zone, the ledger and analytics.",
        )
    )
    op.execute(_JOIN_JOB_ROLE)
    op.execute(
        f"""
        GRANT USAGE ON SCHEMA analytics TO {ANALYST};
        GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO {ANALYST};
        ALTER DEFAULT PRIVILEGES IN SCHEMA analytics GRANT SELECT ON TABLES TO {ANALYST};
        ALTER DEFAULT PRIVILEGES FOR ROLE {JOB} IN SCHEMA analytics GRANT SELECT ON TABLES TO {ANALYST};

        GRANT USAGE, CREATE ON SCHEMA {JOB_SCHEMAS} TO {JOB};
        GRANT ALL ON ALL TABLES IN SCHEMA {JOB_SCHEMAS} TO {JOB};
        GRANT ALL ON ALL SEQUENCES IN SCHEMA {JOB_SCHEMAS} TO {JOB};
        ALTER DEFAULT PRIVILEGES IN SCHEMA {JOB_SCHEMAS} GRANT ALL ON TABLES TO {JOB};
        ALTER DEFAULT PRIVILEGES IN SCHEMA {JOB_SCHEMAS} GRANT ALL ON SEQUENCES TO {JOB};
        """
    )


def downgrade() -> None:
    # The roles stay: other databases on the cluster may still grant to them.
    op.execute(
        f"""
        ALTER DEFAULT PRIVILEGES IN SCHEMA {JOB_SCHEMAS} REVOKE ALL ON SEQUENCES FROM {JOB};
        ALTER DEFAULT PRIVILEGES IN SCHEMA {JOB_SCHEMAS} REVOKE ALL ON TABLES FROM {JOB};
        REVOKE ALL ON ALL SEQUENCES IN SCHEMA {JOB_SCHEMAS} FROM {JOB};
        REVOKE ALL ON ALL TABLES IN SCHEMA {JOB_SCHEMAS} FROM {JOB};
        REVOKE ALL ON SCHEMA {JOB_SCHEMAS} FROM {JOB};

        ALTER DEFAULT PRIVILEGES FOR ROLE {JOB} IN SCHEMA analytics REVOKE SELECT ON TABLES FROM {ANALYST};
        ALTER DEFAULT PRIVILEGES IN SCHEMA analytics REVOKE SELECT ON TABLES FROM {ANALYST};
        REVOKE ALL ON ALL TABLES IN SCHEMA analytics FROM {ANALYST};
        REVOKE ALL ON SCHEMA analytics FROM {ANALYST};
        """
    )
