"""`lifecycle db`: the shop database, and the embedded server behind it when none is configured."""

import os
import shlex

import click

from cli.context import engine_for, fail_cleanly, migrated, pass_settings
from lifecycle import db
from lifecycle.settings import Settings


@click.group(name="db")
def db_group() -> None:
    """The shop database (embedded PostgreSQL unless LIFECYCLE_DATABASE_URL is set)."""


@db_group.command()
@pass_settings
@fail_cleanly
def upgrade(settings: Settings) -> None:
    """Creates or migrates the schemas to the newest revision (safe to run again)."""
    from lifecycle import schema

    engine = migrated(settings)
    click.echo(
        f"database at revision {schema.current_revision(engine)} ({db.safe_url(engine.url)})"
    )


@db_group.command()
@click.option("--psql", "as_psql", is_flag=True, help="Print a psql command line instead.")
@pass_settings
def url(settings: Settings, as_psql: bool) -> None:
    """Prints the database URL in use, as psql accepts it (the password is never printed)."""
    shop = engine_for(settings).url
    if as_psql:
        command, _ = db.psql_command(shop)
        click.echo(shlex.join(command))
    else:
        click.echo(db.libpq_url(shop))
    if shop.password:
        click.echo("(password not shown: psql reads it from PGPASSWORD or ~/.pgpass)", err=True)


@db_group.command()
@pass_settings
def shell(settings: Settings) -> None:
    """Opens psql on the shop database (the psql that comes with the embedded server)."""
    command, env = db.psql_command(engine_for(settings).url)
    os.execve(command[0], command, {**os.environ, **env})


@db_group.command()
@pass_settings
def stop(settings: Settings) -> None:
    """Stops the embedded PostgreSQL (it keeps running after each command so they share it)."""
    if settings.database_url:
        click.echo("LIFECYCLE_DATABASE_URL is set: lifecycle started no server, nothing to stop")
        return
    if db.stop_embedded_server(settings.embedded_data_dir):
        click.echo(f"embedded PostgreSQL stopped ({settings.embedded_data_dir})")
    else:
        click.echo(f"embedded PostgreSQL was not running ({settings.embedded_data_dir})")
