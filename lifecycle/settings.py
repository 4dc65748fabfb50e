"""Deployment settings: the one typed place that reads the environment.

Business rules (windows, personal columns) live in the policy file; this module only says *where*
things are (database, policy file, Dagster home) and *when* the nightly job runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]


def default_base() -> Path:
    """Where the defaults live: the source checkout when running from one (make demo, make test),
    else the current directory (an installed package has no project folder of its own)."""
    return PROJECT_DIR if (PROJECT_DIR / "pyproject.toml").exists() else Path.cwd()


@dataclass(frozen=True)
class Settings:
    """Where the project's parts live, read once from the environment."""

    home: Path
    database_url: str | None
    policy_path: Path
    dagster_home: Path
    schedule_cron: str
    schedule_timezone: str
    dagster_storage_url: str | None = None
    webhook_url: str | None = None
    export_dir: Path = Path(".lifecycle/exports")  # LIFECYCLE_EXPORT_DIR, else <home>/exports
    # LIFECYCLE_GUARD_SECRET: the leak guard's HMAC key (else <home>/guard.key); never printed.
    guard_secret: str | None = field(default=None, repr=False)
    # LIFECYCLE_GUARD_READER_PASSWORD: the guard's reader login, where the server asks for one.
    guard_reader_password: str | None = field(default=None, repr=False)

    @property
    def embedded_data_dir(self) -> Path:
        """Data folder of the embedded PostgreSQL used when no database URL is configured."""
        return self.home / "pgdata"

    @property
    def guard_key_file(self) -> Path:
        """Where the leak guard keeps its HMAC key when LIFECYCLE_GUARD_SECRET is not set."""
        return self.home / "guard.key"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Reads LIFECYCLE_* variables, falling back to project-local defaults."""
        env = dict(os.environ if env is None else env)
        base = default_base()
        home = Path(env.get("LIFECYCLE_HOME") or base / ".lifecycle")
        return cls(
            home=home,
            database_url=env.get("LIFECYCLE_DATABASE_URL") or None,
            policy_path=Path(env.get("LIFECYCLE_POLICY") or base / "policy.yaml"),
            dagster_home=Path(env.get("DAGSTER_HOME") or home / "dagster"),
            schedule_cron=env.get("LIFECYCLE_SCHEDULE_CRON") or "0 2 * * *",
            schedule_timezone=env.get("LIFECYCLE_SCHEDULE_TIMEZONE") or "UTC",
            dagster_storage_url=env.get("LIFECYCLE_DAGSTER_STORAGE_URL") or None,
            webhook_url=env.get("LIFECYCLE_WEBHOOK_URL") or None,
            export_dir=Path(env.get("LIFECYCLE_EXPORT_DIR") or home / "exports"),
            guard_secret=env.get("LIFECYCLE_GUARD_SECRET") or None,
            guard_reader_password=env.get("LIFECYCLE_GUARD_READER_PASSWORD") or None,
        )
