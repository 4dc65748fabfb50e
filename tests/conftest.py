"""Real PostgreSQL for every test that touches data: the embedded server and, when reachable,
the machine's server (LIFECYCLE_TEST_DATABASE_URL, else 127.0.0.1:5432 as postgres).

Each backend gets a throw-away database for the session, migrated once; each test starts from
empty tables. With LIFECYCLE_REQUIRE_ALL_BACKENDS=1 (set by .ci/run) an unreachable server fails
the suite instead of skipping it. With LIFECYCLE_TEST_PARTITIONED=1 that database's shop.orders
and shop.after_sales_cases are range-partitioned by order_id (issue 13: every purge, request and
erasure test passes on both schemas); tests/db/partitioned/ always runs a subset that way.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from lifecycle import db, schema
from lifecycle.policy import load_policy
from lifecycle.retention.partitions import create_partitioned_shop
from lifecycle.retention.server_log import RECOMMENDED
from lifecycle.sales import blocks
from lifecycle.settings import PROJECT_DIR, Settings
from orchestration.instance import open_instance

SERVER_URL = (
    os.environ.get("LIFECYCLE_TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
)
AS_OF = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PARTITION_BOUNDS = [1000, 2000]  # tests' order ids fall on both sides of each bound
# The tests' calendar: AS_OF's Monday starts a block of every length the summary publishes, so
# the last complete week before it (where most planted sales lie) ends its 7-, 28- and 84-day
# windows alike. Blocks count from any Monday; lifecycle's own is 2001-01-01 (tests/unit checks
# it), 42 days off this one.
TEST_EPOCH = AS_OF.date() - timedelta(weeks=12 * 100)


@pytest.fixture(autouse=True)
def _blocks_end_before_as_of(request, monkeypatch):
    if "unit" not in request.node.path.parts:
        monkeypatch.setattr(blocks, "EPOCH", TEST_EPOCH)


def _admin_url(backend: str) -> sa.URL:
    if backend == "embedded":
        return db.normalise_url(db.start_embedded_server(Settings.from_env().embedded_data_dir))
    url = db.normalise_url(SERVER_URL)
    try:
        engine = sa.create_engine(
            url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 3}
        )
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        reason = (
            f"PostgreSQL server at {db.safe_url(url)} not reachable ({db.describe_db_error(exc)})"
        )
        if os.environ.get("LIFECYCLE_REQUIRE_ALL_BACKENDS") == "1":
            pytest.fail(reason + "; .ci/run requires both backends")
        pytest.skip(reason)
    return url


def migrated_database(backend: str, partitioned: bool, suffix: str = ""):
    """Creates and migrates a session database (partitioned shop tables first when asked),
    yields its URL, drops it."""
    admin = _admin_url(backend)
    name = f"lifecycle_test_{os.getpid()}{suffix}"
    db.drop_database(admin, name)
    db.ensure_database(admin, name)
    url = admin.set(database=name)
    engine = db.create_engine(url)
    _keep_values_out_of_server_log(engine, name)
    if partitioned:
        create_partitioned_shop(engine, PARTITION_BOUNDS)
    schema.upgrade(engine)
    engine.dispose()
    yield url
    db.drop_database(admin, name)
    db.drop_database(admin, cli_history_database(name))


def cli_history_database(name: str) -> str:
    """The run history the `lifecycle` command gets in the tests (tests/test_cli.py): one
    database per session database, dropped with it, never the shared server's `dagster`."""
    return f"{name}_cli_dagster"


def _keep_values_out_of_server_log(engine: sa.Engine, name: str) -> None:
    """Tests make statements fail with personal-looking values on purpose: the server shared by
    every session must not log them, and the nightly's server-log check then passes."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for setting, value in RECOMMENDED.items():
            conn.execute(sa.text(f"ALTER DATABASE \"{name}\" SET {setting} = '{value}'"))


@pytest.fixture(scope="session", params=["embedded", "server"])
def database_url(request) -> sa.URL:
    """A freshly migrated database on one backend, dropped after the session."""
    yield from migrated_database(request.param, os.environ.get("LIFECYCLE_TEST_PARTITIONED") == "1")


def truncate_all(engine: sa.Engine) -> None:
    """Empties every table the project owns, keeping the migration state."""
    with engine.begin() as conn:
        tables = (
            conn.execute(
                sa.text("""
            SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
            WHERE schemaname IN ('shop', 'lifecycle', 'analytics', 'logistics')
              AND tablename <> 'alembic_version'
        """)
            )
            .scalars()
            .all()
        )
        if tables:
            conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))


@pytest.fixture
def engine(database_url) -> sa.Engine:
    """An engine on the session's database, every table empty."""
    engine = db.create_engine(database_url)
    truncate_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def policy():
    """The project's own policy file."""
    return load_policy(PROJECT_DIR / "policy.yaml")


@pytest.fixture
def policy_file(tmp_path):
    """Writes a policy variant to a temp file: policy_file(text) -> Path."""

    def write(text: str, name: str = "policy.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="session")
def dagster_template(database_url, tmp_path_factory) -> str:
    """A database holding Dagster's empty storage schema, copied for each test that needs a history."""
    name = f"{database_url.database}_dagster"
    db.drop_database(database_url, name)
    db.ensure_database(database_url, name)
    with open_instance(
        dataclasses.replace(
            Settings.from_env(),
            dagster_home=tmp_path_factory.mktemp("dagster_template"),
            dagster_storage_url=database_url.set(database=name).render_as_string(
                hide_password=False
            ),
        )
    ):
        pass
    yield name
    db.drop_database(database_url, name)


@pytest.fixture
def dagster_settings(database_url, dagster_template, tmp_path) -> Settings:
    """Settings on the test shop whose run history is a fresh PostgreSQL database and DAGSTER_HOME."""
    name = f"{database_url.database}_history"
    admin = db.create_engine(database_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{dagster_template}"'))
    admin.dispose()
    yield dataclasses.replace(
        Settings.from_env(),
        database_url=database_url.render_as_string(hide_password=False),
        dagster_home=tmp_path / "dagster_home",
        dagster_storage_url=database_url.set(database=name).render_as_string(hide_password=False),
    )
    db.drop_database(database_url, name)


@pytest.fixture
def dagster_instance(dagster_settings):
    """A Dagster instance whose run, event-log and schedule storage is that fresh database."""
    with open_instance(dagster_settings) as instance:
        yield instance
