"""What every verb starts from: the settings, the shop's engine and policy, and clean failures."""

from __future__ import annotations

import functools
import os
import sys
from typing import NoReturn

import click
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle import db
from lifecycle.policy import Policy, PolicyError, check_policy_against_database, load_policy
from lifecycle.settings import Settings
from orchestration import names
from orchestration.instance import storage_url

pass_settings = click.make_pass_decorator(Settings)


def engine_for(settings: Settings) -> Engine:
    """The shop's engine: LIFECYCLE_DATABASE_URL, else the embedded server."""
    try:
        url = db.resolve_url(settings)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    return db.engine_for(url.render_as_string(hide_password=False))


def migrated(settings: Settings) -> Engine:
    """The shop's engine, its schemas first brought to the newest migration.

    Alembic is imported here rather than when the command starts: it is a third of a second that
    the verbs which never migrate (guard, report, …) need not pay."""
    from lifecycle import schema

    engine = engine_for(settings)
    schema.upgrade(engine)
    return engine


def checked_policy(settings: Settings, engine: Engine) -> Policy:
    """The policy file, validated and held against the live database."""
    policy = load_policy(settings.policy_path)
    with engine.connect() as conn:
        check_policy_against_database(policy, conn)
    return policy


def fail_cleanly(func):
    """Turns the domain's own errors into one clear line and exit status 1, not a stack trace."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except PolicyError as exc:
            raise click.ClickException(
                "policy is not usable:\n  " + "\n  ".join(exc.problems)
            ) from None
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


# SQLSTATE classes of a server that cannot be used at all: connection (08), authorization (28),
# no such database (3D), shutting down or starting up (57P). Psycopg gives none when the server
# cannot be reached at all.
_UNREACHABLE = ("08", "28", "3D", "57P")


class DatabaseUnreachable(click.ClickException):
    """The database cannot be used: one line naming it (password hidden) and the fix; exit 2."""

    exit_code = 2


def _unreachable(exc: sa.exc.DBAPIError) -> bool:
    state = getattr(getattr(exc.orig, "diag", None), "sqlstate", None)
    return state is None or state.startswith(_UNREACHABLE)


def _where(settings: Settings | None) -> str:
    if settings is None:
        return "the database"
    if settings.database_url:
        try:
            return db.safe_url(db.normalise_url(settings.database_url))
        except Exception:  # an unparseable URL must not replace the error being reported
            return "LIFECYCLE_DATABASE_URL"
    return f"the embedded PostgreSQL in {settings.embedded_data_dir}"


class CleanGroup(click.Group):
    """The command group: whatever verb runs, a database error ends in one line, never a traceback.

    A traceback of a database error would print SQLAlchemy's statement and bound parameters (and
    the server's text, which can quote a value); a person needs the database, the cause and the fix.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PolicyError as exc:
            raise click.ClickException(
                "policy is not usable:\n  " + "\n  ".join(exc.problems)
            ) from None
        except sa.exc.DBAPIError as exc:
            settings = ctx.obj if isinstance(ctx.obj, Settings) else None
            if _unreachable(exc):
                history = settings.dagster_storage_url if settings else None
                raise DatabaseUnreachable(
                    f"cannot use {_where(settings)} ({db.describe_db_error(exc)}); start PostgreSQL "
                    "there or set LIFECYCLE_DATABASE_URL to a running server"
                    + (" (and LIFECYCLE_DAGSTER_STORAGE_URL, which is also set)" if history else "")
                ) from None
            raise click.ClickException(
                f"database error: {db.describe_db_error(exc)} (values are not shown)"
            ) from None


def leave(status: int) -> NoReturn:
    """Ends the process at once with `status`, skipping the interpreter's teardown.

    With Dagster and Great Expectations loaded, finalising the interpreter (module teardown, C
    extensions) takes 7–9 s after the run has returned (bench/RESULTS.md, `nightly`). Nothing is
    left to clean up by then: the instance is closed, the shop's engines are disposed here and the
    output flushed. Under click's test runner (stdout swapped, the process is the test runner's)
    it exits normally.
    """
    db.dispose_engines()
    sys.stdout.flush()
    sys.stderr.flush()
    if sys.stdout is not sys.__stdout__:
        sys.exit(status)
    os._exit(status)


def run_job(settings: Settings, trigger: str, job: str = names.NIGHTLY_JOB) -> bool:
    """Runs `job` through Dagster, prints one line per step; False if the run failed.

    The verb ends with `leave` (exit 1 if the run failed). Dagster and the definitions are imported
    here, not when the command starts: verbs that run no job do without them."""
    from cli import launch

    click.echo(f"running {job} …")
    result = launch.run_job(settings, job, trigger, progress=lambda line: click.echo(f"  {line}"))
    for line in launch.summary_lines(result.events):
        click.echo(f"  {line}")
    click.echo(
        f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'} "
        f"(history in {db.libpq_url(storage_url(settings))})"
    )
    return result.success
