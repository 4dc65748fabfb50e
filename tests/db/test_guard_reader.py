"""The guard reads analytics with an analyst's rights only: code an analytics author planted runs
without the job's rights, and one relation the guard cannot read is a finding for that relation
while every other check still runs."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import sqlalchemy as sa

from assets.guard import GUARD_CHECKS
from lifecycle.guard import raw_values, reader, values
from lifecycle.guard.key import GuardKey
from tests.conftest import AS_OF
from tests.shop import PERSONAL, add_delivered

KEY = GuardKey(b"test-guard-key-not-for-production")
AUTHOR = f"lifecycle_guard_author_{os.getpid()}"

# The escalation of issue 12: a view calling its author's function, which tries to become the
# session's user again, reads shop.orders, keeps what it read in a side table and returns it.
PLANT = """
CREATE TABLE analytics.loot (v text);
GRANT INSERT, SELECT ON analytics.loot TO PUBLIC;
CREATE FUNCTION analytics.peek() RETURNS text LANGUAGE plpgsql AS $f$
DECLARE got text;
BEGIN
    BEGIN PERFORM set_config('role', 'none', true); EXCEPTION WHEN OTHERS THEN NULL; END;
    BEGIN SELECT string_agg(receiver_email, ',') INTO got FROM shop.orders;
    EXCEPTION WHEN OTHERS THEN got := NULL; END;
    BEGIN INSERT INTO analytics.loot VALUES (got); EXCEPTION WHEN OTHERS THEN NULL; END;
    RETURN coalesce(got, 'refused');
END $f$;
CREATE VIEW analytics.adhoc_peek AS SELECT analytics.peek() AS remark;
GRANT SELECT ON analytics.adhoc_peek TO lifecycle_analyst;
CREATE VIEW analytics.adhoc_private AS SELECT 'not granted to analysts' AS remark;
"""


@pytest.fixture
def author(engine):
    """A role with only CREATE (and USAGE) on analytics, and what it planted there."""
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - timedelta(days=2))
        conn.execute(sa.text(f"DROP ROLE IF EXISTS {AUTHOR}"))
        conn.execute(sa.text(f"CREATE ROLE {AUTHOR} NOLOGIN"))
        conn.execute(sa.text(f"GRANT USAGE, CREATE ON SCHEMA analytics TO {AUTHOR}"))
        conn.execute(sa.text(f"SET LOCAL ROLE {AUTHOR}"))
        conn.execute(sa.text(PLANT))
    yield AUTHOR
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP OWNED BY {AUTHOR} CASCADE"))
        conn.execute(sa.text(f"DROP ROLE {AUTHOR}"))


def loot(engine) -> list[str]:
    with engine.connect() as conn:
        return (
            conn.execute(sa.text("SELECT v FROM analytics.loot WHERE v IS NOT NULL"))
            .scalars()
            .all()
        )


def test_set_role_alone_would_let_the_planted_function_read_the_raw_zone(engine, author):
    """The escalation, reproduced: the job's session acting as the analyst is no barrier."""
    with engine.connect() as conn, conn.begin():
        conn.execute(sa.text("SET LOCAL ROLE lifecycle_analyst"))
        remark = conn.execute(sa.text("SELECT remark FROM analytics.adhoc_peek")).scalar()
        conn.rollback()
    assert PERSONAL["receiver_email"] in remark


def test_the_guard_runs_planted_code_without_the_jobs_rights(engine, author, policy):
    patterns = values.personal_value_patterns(engine, KEY)
    prints = raw_values.raw_values_in_zone(engine, policy, KEY)
    with reader.reader_engine(engine).connect() as conn:
        remark = conn.execute(sa.text("SELECT remark FROM analytics.adhoc_peek")).scalar()
        session = conn.execute(sa.text("SELECT session_user")).scalar()
    assert remark == "refused" and session == reader.READER_ROLE
    assert loot(engine) == []
    # The view was read (its function ran) and held nothing personal: no finding names it.
    assert not [f for f in patterns.findings + prints.findings if "adhoc_peek" in f.table]
    assert prints.error is None and patterns.error is None


def test_a_relation_the_reader_cannot_read_is_a_finding_and_the_rest_still_run(
    engine, author, policy
):
    reports = {check.name: check.scan(engine, policy, KEY) for check in GUARD_CHECKS}
    for name in ("no_personal_patterns_in_analytics", "no_raw_values_in_analytics"):
        report = reports[name]
        assert report.error is None, name
        assert {(f.table, f.kind) for f in report.findings} == {
            ("analytics.adhoc_private", "check_error")
        }, name
        assert "not granted" not in report.description()
    assert "42501" in reports["no_raw_values_in_analytics"].description()
    # The checks that read no analytics value pass as before.
    assert reports["raw_columns_all_classified"].passed
    assert reports["analyst_cannot_read_personal_columns"].passed
    assert loot(engine) == []


def test_the_reader_logs_in_as_an_analyst_that_can_write_nothing(engine):
    with reader.reader_engine(engine).connect() as conn:
        roles = conn.execute(
            sa.text("""
            SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb,
                   array(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid
                         WHERE m.member = r.oid)
            FROM pg_roles r WHERE r.rolname = session_user""")
        ).one()
        with pytest.raises(sa.exc.DBAPIError) as refused:
            conn.execute(sa.text("CREATE TEMP TABLE guard_probe (v text)"))
    assert roles == (False, False, False, ["lifecycle_analyst"])
    assert refused.value.orig.sqlstate == "25006"  # read-only transaction
