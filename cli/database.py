"""`lifecycle db`: the shop database."""

import click

from cli.context import engine_for, fail_cleanly, pass_settings
from lifecycle import db, schema
from lifecycle.settings import Settings


@click.group(name="db")
def db_group() -> None:
    """The shop database (embedded PostgreSQL unless LIFECYCLE_DATABASE_URL is set)."""


@db_group.command()
@pass_settings
@fail_cleanly
def upgrade(settings: Settings) -> None:
    """Creates or migrates the schemas to the newest revision (safe to run again)."""
    engine = engine_for(settings)
    schema.upgrade(engine)
    click.echo(
        f"database at revision {schema.current_revision(engine)} ({db.safe_url(engine.url)})"
    )


@db_group.command()
@pass_settings
def url(settings: Settings) -> None:
    """Prints the database URL in use (password hidden)."""
    click.echo(db.safe_url(engine_for(settings).url))
