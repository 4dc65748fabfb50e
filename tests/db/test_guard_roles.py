"""Least privilege and data minimisation on real PostgreSQL: the analyst role is refused the raw
zone, the roles' migration runs again and beside other databases, a new raw column fails."""

from __future__ import annotations

import importlib.util
import os
import threading

import pytest
import sqlalchemy as sa

from lifecycle import db, schema
from lifecycle.checks import CheckResult
from lifecycle.guard import minimisation, privilege
from lifecycle.policy import load_policy
from lifecycle.settings import PROJECT_DIR

ANALYST = privilege.ANALYST_ROLE
MIGRATION = PROJECT_DIR / "lifecycle" / "migrations" / "versions" / "0004_guard_roles.py"


def as_analyst(conn, sql: str):
    conn.execute(sa.text(f"SET LOCAL ROLE {ANALYST}"))
    return conn.execute(sa.text(sql))


def found(report: CheckResult) -> set[tuple[str, str, str]]:
    return {(f.table, f.column, f.kind) for f in report.findings}


# ---------------------------------------------------------------- the analyst role


def test_the_analyst_is_refused_every_personal_raw_column(engine, policy):
    report = privilege.analyst_access(engine, policy)
    assert report.passed and report.scanned["personal_columns_refused"] == 7
    with engine.connect() as conn, conn.begin():
        with pytest.raises(sa.exc.ProgrammingError) as refused:
            as_analyst(conn, "SELECT receiver_phone FROM shop.orders LIMIT 0")
    assert refused.value.orig.sqlstate == "42501"


def test_the_analyst_reads_analytics_including_tables_made_after_the_migration(engine, policy):
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE analytics.adhoc_later AS SELECT 1 AS units"))
    try:
        with engine.connect() as conn, conn.begin():
            assert as_analyst(conn, "SELECT units FROM analytics.adhoc_later").scalar() == 1
        report = privilege.analyst_access(engine, policy)
        assert (
            report.scanned["analytics_relations_readable"]
            == report.scanned["analytics_relations"]
            >= 4
        )
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE analytics.adhoc_later"))


@pytest.mark.parametrize("grantee", [ANALYST, "PUBLIC"])
def test_a_grant_that_opens_a_personal_column_fails_the_check(engine, policy, grantee):
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"GRANT USAGE ON SCHEMA shop TO {grantee}; "
                f"GRANT SELECT (order_id, receiver_phone) ON shop.orders TO {grantee}"
            )
        )
    try:
        report = privilege.analyst_access(engine, policy)
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"REVOKE SELECT (order_id, receiver_phone) ON shop.orders FROM {grantee}; "
                    f"REVOKE USAGE ON SCHEMA shop FROM {grantee}"
                )
            )
    assert found(report) == {
        ("shop.orders", "receiver_phone", "personal_column_readable"),
        ("shop", "", "schema_usage"),
        ("shop.orders", "", "relation_readable"),
    }
    assert privilege.analyst_access(engine, policy).passed


def test_usage_on_the_ledger_schema_alone_fails_the_check(engine, policy):
    with engine.begin() as conn:
        conn.execute(sa.text(f"GRANT USAGE ON SCHEMA lifecycle TO {ANALYST}"))
    try:
        report = privilege.analyst_access(engine, policy)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"REVOKE USAGE ON SCHEMA lifecycle FROM {ANALYST}"))
    assert found(report) == {("lifecycle", "", "schema_usage")}


# ---------------------------------------------------------------- the migration


def test_the_roles_migration_runs_again_and_on_a_cluster_where_the_roles_exist(database_url):
    admin = database_url.set(database="postgres")
    other = f"{database_url.database}_guard_other"
    db.drop_database(admin, other)
    db.ensure_database(admin, other)
    engine = db.create_engine(admin.set(database=other))
    try:
        schema.upgrade(engine)  # the roles exist already: the session's own database made them
        schema.upgrade(engine)
        with engine.connect() as conn:
            usage = conn.execute(
                sa.text(
                    "SELECT has_schema_privilege(:r, 'analytics', 'USAGE'), has_schema_privilege(:r, 'shop', 'USAGE'), "
                    "has_table_privilege('lifecycle_job', 'shop.orders', 'UPDATE')"
                ),
                {"r": ANALYST},
            ).one()
        assert tuple(usage) == (True, False, True)
    finally:
        engine.dispose()
        db.drop_database(admin, other)


def test_role_creation_tolerates_another_database_creating_it_at_the_same_moment(engine):
    spec = importlib.util.spec_from_file_location("guard_roles_migration", MIGRATION)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    role = f"lifecycle_guard_race_{os.getpid()}"
    create = sa.text(migration._CREATE_ROLE.format(role=role, comment="test"))
    errors: list[BaseException] = []
    first = engine.connect()
    try:
        tx = first.begin()
        first.execute(create)  # created, not yet committed: the second creator waits on it

        def second_creator():
            try:
                with engine.begin() as conn:
                    conn.execute(create)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        waiting = threading.Thread(target=second_creator)
        waiting.start()
        waiting.join(timeout=1)
        assert waiting.is_alive()  # blocked behind the first creator's uncommitted role
        tx.commit()
        waiting.join(timeout=30)
        assert not waiting.is_alive() and errors == []
    finally:
        first.close()
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))


# ---------------------------------------------------------------- data minimisation


def test_a_new_raw_column_fails_minimisation_until_the_policy_names_it(engine, policy, policy_file):
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE shop.orders ADD COLUMN referrer_email text"))
    try:
        report = minimisation.unclassified_raw_columns(engine, policy)
        personal = ", ".join([*policy.raw.orders.personal_columns, "referrer_email"])
        named = policy_file(f'version: "t"\nraw:\n  orders:\n    personal_columns: [{personal}]\n')
        after = minimisation.unclassified_raw_columns(engine, load_policy(named))
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE shop.orders DROP COLUMN referrer_email"))
    [finding] = report.findings
    assert (finding.table, finding.column, finding.kind) == (
        "shop.orders",
        "referrer_email",
        "unclassified_column",
    )
    assert "personal_columns" in finding.detail and "kept_columns" in finding.detail
    assert after.passed
    assert minimisation.unclassified_raw_columns(engine, policy).passed
