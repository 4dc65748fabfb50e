"""Who may read the hand-off: one role per carrier, its columns, and a row policy for its rows.

A carrier reads logistics.handoff as a NOLOGIN role under row-level security: SELECT on the
handed-off columns only and a row policy showing the rows of its name. Roles are cluster-wide,
grants and row policies per database; a run changes only what differs from the policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.logistics.handoff import HANDOFF
from lifecycle.policy import CARRIER_ROLE_PREFIX, LOGISTICS_KEYS, Policy, quote_ident


def role_name(carrier: str) -> str:
    """The database role through which `carrier` reads its own deliveries."""
    return CARRIER_ROLE_PREFIX + carrier


def policy_name(carrier: str) -> str:
    """The row-level security policy that shows `carrier` its own rows."""
    return "carrier_" + carrier


@dataclass
class AccessReport:
    """Which carrier roles hold access after the run, and what this run had to change."""

    roles: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    regranted: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, object]:
        """Role names and granted columns for the hand-off's materialization."""
        return {
            "carrier_roles": self.roles,
            "roles_created": self.created,
            "roles_regranted": self.regranted,
            "roles_revoked": self.revoked,
            "granted_columns": self.columns,
        }


# Roles are cluster-wide: another database (or a concurrent test run) may create the same one
# between the check and the CREATE, which surfaces as either error below.
_CREATE_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {literal}) THEN
        CREATE ROLE {ident} NOLOGIN NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END $$
"""
_ONE_RUN_AT_A_TIME = sa.text("SELECT pg_advisory_xact_lock(hashtext('lifecycle.logistics.access'))")
_ROLE_EXISTS = sa.text("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :name)")
_HOLDERS = sa.text("""
    SELECT rolname FROM pg_roles
    WHERE starts_with(rolname, :prefix)
      AND (has_schema_privilege(oid, 'logistics', 'USAGE')
           OR has_any_column_privilege(oid, 'logistics.handoff',
                                       'SELECT, INSERT, UPDATE, REFERENCES')
           OR has_table_privilege(oid, 'logistics.handoff', 'DELETE, TRUNCATE, TRIGGER'))
    ORDER BY rolname
""")
# A role holds exactly what it should: schema usage, SELECT on the wanted columns (not the whole
# table, which would also open any column added later), and nothing else.
_GRANTS_OF = sa.text("""
    SELECT has_schema_privilege(:role, 'logistics', 'USAGE')
       AND NOT has_table_privilege(:role, 'logistics.handoff',
                                   'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
       AND NOT has_any_column_privilege(:role, 'logistics.handoff', 'INSERT, UPDATE, REFERENCES')
       AND ARRAY(SELECT CAST(attname AS text) FROM pg_attribute
                 WHERE attrelid = CAST('logistics.handoff' AS regclass)
                   AND attnum > 0 AND NOT attisdropped
                   AND has_column_privilege(:role, attrelid, attnum, 'SELECT') ORDER BY attname)
           = CAST(:columns AS text[])
""")
_OUR_POLICIES = sa.text("""
    SELECT policyname FROM pg_policies
    WHERE schemaname = 'logistics' AND tablename = 'handoff' AND starts_with(policyname, 'carrier_')
""")
_POLICIES = sa.text("""
    SELECT policyname, cmd = 'SELECT' AND permissive = 'PERMISSIVE'
                       AND CAST(roles AS text[]) = ARRAY[:role] AND qual = :qual
    FROM pg_policies WHERE schemaname = 'logistics' AND tablename = 'handoff'
""")


def _literal(value: str) -> str:
    # Only for names that passed policy.IDENTIFIER (letters, digits, _), so no quote can occur.
    quote_ident(value)
    return "'" + value + "'"


def create_role(engine: Engine, name: str) -> bool:
    """Creates the NOLOGIN role `name` unless it exists; True when this call created it."""
    with engine.begin() as conn:
        existed = conn.execute(_ROLE_EXISTS, {"name": name}).scalar()
        if not existed:
            statement = _CREATE_ROLE.format(literal=_literal(name), ident=quote_ident(name))
            conn.execute(sa.text(statement))
    return not existed


def ensure_carrier_access(engine: Engine, policy: Policy) -> AccessReport:
    """Gives each role carrier of the policy its role, its row policy and its columns; no one else.

    Changes only what differs, under one advisory lock in one transaction, so a repeated run
    changes nothing and takes no lock on the hand-off (a new row policy needs an exclusive one).
    """
    carriers = policy.logistics.role_carriers
    columns = list(LOGISTICS_KEYS + policy.logistics.fields)
    report = AccessReport(roles=[role_name(c) for c in carriers], columns=columns)
    report.created = [role_name(c) for c in carriers if create_role(engine, role_name(c))]
    granted = ", ".join(quote_ident(c) for c in columns)
    with engine.begin() as conn:
        conn.execute(_ONE_RUN_AT_A_TIME)
        holders = conn.execute(_HOLDERS, {"prefix": CARRIER_ROLE_PREFIX}).scalars().all()
        report.revoked = [r for r in holders if r not in report.roles]
        for role in report.revoked:
            conn.execute(sa.text(f"REVOKE ALL ON {HANDOFF} FROM {quote_ident(role)}"))
            conn.execute(sa.text(f"REVOKE ALL ON SCHEMA logistics FROM {quote_ident(role)}"))
        for carrier in carriers:
            role, rule = role_name(carrier), policy_name(carrier)
            if not conn.execute(_GRANTS_OF, {"role": role, "columns": sorted(columns)}).scalar():
                report.regranted.append(role)
                grantee = quote_ident(role)
                conn.execute(sa.text(f"GRANT USAGE ON SCHEMA logistics TO {grantee}"))
                conn.execute(sa.text(f"REVOKE ALL ON {HANDOFF} FROM {grantee}"))
                conn.execute(sa.text(f"GRANT SELECT ({granted}) ON {HANDOFF} TO {grantee}"))
            qual = f"(carrier = {_literal(carrier)}::text)"  # as pg_policies shows it
            rules = dict(conn.execute(_POLICIES, {"role": role, "qual": qual}).all())
            if not rules.get(rule):
                conn.execute(sa.text(f"DROP POLICY IF EXISTS {quote_ident(rule)} ON {HANDOFF}"))
                conn.execute(
                    sa.text(
                        f"CREATE POLICY {quote_ident(rule)} ON {HANDOFF} AS PERMISSIVE FOR SELECT "
                        f"TO {quote_ident(role)} USING (carrier = {_literal(carrier)})"
                    )
                )
        wanted = {policy_name(c) for c in carriers}
        for stale in set(conn.execute(_OUR_POLICIES).scalars()) - wanted:
            conn.execute(sa.text(f"DROP POLICY {quote_ident(stale)} ON {HANDOFF}"))
    return report
