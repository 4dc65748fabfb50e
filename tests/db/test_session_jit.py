"""Every session the project opens runs with JIT off (lifecycle/db.py, SESSION_OPTIONS): the
nightly's and the data-requests job's engine (the ShopDatabase resource), the CLI's, and the
guard's reader. PostgreSQL JIT-compiled the retention statements from their estimated cost,
seconds of compiling for a fraction of a second of work. A user who wants JIT says so the libpq
way, and that wins. Every session may also keep its temp tables in memory (temp_buffers), which
the planning builds rely on."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from cli.context import engine_for as cli_engine
from lifecycle import db
from lifecycle.guard.reader import reader_engine
from lifecycle.retention.rules import Cutoffs, RetentionSql
from lifecycle.retention.standing import _summary_sql
from lifecycle.settings import PROJECT_DIR, Settings
from orchestration.resources import ShopDatabase
from tests.conftest import AS_OF


def _jit_lines(conn: sa.Connection, policy) -> list[str]:
    """The due summary's plan, with JIT asked for at any cost: the `JIT:` lines it shows."""
    conn.execute(sa.text("SET jit_above_cost = 0"))
    plan = conn.execute(
        sa.text("EXPLAIN (ANALYZE, SUMMARY) " + _summary_sql(RetentionSql(policy), True)),
        Cutoffs.at(AS_OF, policy).params(),
    ).scalars()
    return [line for line in plan if line.strip().startswith("JIT")]


def test_the_jobs_sessions_run_with_jit_off(database_url, policy):
    url = database_url.render_as_string(hide_password=False)
    shop = ShopDatabase(url=url, policy_path=str(PROJECT_DIR / "policy.yaml")).engine()
    engines = {
        "the jobs' resource": shop,
        "the CLI": cli_engine(Settings(**{**vars(Settings.from_env()), "database_url": url})),
        "the guard's reader": reader_engine(shop),
    }
    for who, engine in engines.items():
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW jit")).scalar() == "off", who
            if who != "the guard's reader":  # which reads analytics only, in no temp table
                # Room for the planning builds' temp tables, set before any is created.
                temp_buffers = conn.execute(sa.text("SHOW temp_buffers")).scalar()
                assert temp_buffers == db.TEMP_BUFFERS, who
    with shop.connect() as conn:
        assert _jit_lines(conn, policy) == []
    # Not vacuous: the same statement on the same server is compiled when JIT is on (where the
    # server has a JIT provider; pg_jit_available() also says false while jit is off).
    wanted = db.create_engine(database_url.update_query_dict({"options": "-c jit=on"}))
    try:
        with wanted.connect() as conn:
            assert conn.execute(sa.text("SHOW jit")).scalar() == "on"
            if not conn.execute(sa.text("SELECT pg_jit_available()")).scalar():
                pytest.skip("no JIT provider on this server (the embedded one has no LLVM)")
            assert _jit_lines(conn, policy)
    finally:
        wanted.dispose()


def test_a_user_who_wants_jit_says_so_in_the_url_or_pgoptions():
    url = db.normalise_url("postgresql://u@h/d")
    ours = f"-c jit=off -c temp_buffers={db.TEMP_BUFFERS}"
    assert db.session_options(url, {}) == ours
    asked = url.update_query_dict({"options": "-c jit=on -c work_mem=64MB"})
    assert db.session_options(asked, {}) == f"{ours} -c jit=on -c work_mem=64MB"
    assert db.session_options(url, {"PGOPTIONS": "-c jit=on"}) == f"{ours} -c jit=on"
    # libpq reads PGOPTIONS only when the connection string has no options of its own.
    assert db.session_options(asked, {"PGOPTIONS": "-c x=1"}).endswith("work_mem=64MB")
