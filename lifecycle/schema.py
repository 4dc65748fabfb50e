"""Schema migrations: Alembic, run on our own engine so every entry point shares one path."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Brings the database to `revision`; safe to run again."""
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str:
    """The revision(s) the database is at, comma-separated; empty before the first upgrade."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table_schema": "lifecycle"})
        return ",".join(sorted(context.get_current_heads()))


def head_revision() -> str:
    """The newest revision(s) this code knows, comma-separated."""
    return ",".join(sorted(ScriptDirectory.from_config(_config()).get_heads()))
