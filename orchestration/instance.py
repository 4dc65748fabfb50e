"""Dagster's instance: where the run history lives, and opening it.

The run history is the compliance record, so it lives in PostgreSQL (dagster-postgres) rather
than Dagster's default SQLite files: on the shop's server in a database of its own (`dagster`)
unless LIFECYCLE_DAGSTER_STORAGE_URL names another. The CLI, `make ui` and the tests all write
DAGSTER_HOME/dagster.yaml through `write_instance_config`, so every process reads one history.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import URL

from lifecycle import db
from lifecycle.files import private_dir, write_private
from lifecycle.settings import Settings

if TYPE_CHECKING:
    import dagster as dg

DAGSTER_DATABASE = "dagster"
# Files a run writes under DAGSTER_HOME (compute logs: whatever a step printed) are private.
PRIVATE_UMASK = 0o077

_MARKER = "# Written by lifecycle (orchestration/instance.py)"
_HEADER = f"""{_MARKER} from LIFECYCLE_DAGSTER_STORAGE_URL, else the shop's server.
# Rewritten by every `lifecycle` command and `make ui`; to keep your own file, delete the first line.
"""


# Schedule and sensor ticks say only when something was evaluated; a quarter of a year answers
# "did the schedule fire?" for any recent night, skipped sensor ticks matter for a week.
TICK_RETENTION = {
    "schedule": {"purge_after_days": 90},
    "sensor": {"purge_after_days": {"skipped": 7, "failure": 90, "success": 90}},
}


class HistoryError(RuntimeError):
    """The run history's storage cannot be reached or created; the message says what to set."""


def storage_url(settings: Settings) -> URL:
    """PostgreSQL URL of Dagster's run, event-log and schedule storage (psycopg2 spelling).

    LIFECYCLE_DAGSTER_STORAGE_URL when set (the database must exist); otherwise a database
    `dagster` on the shop's server, created on first use.
    """
    if settings.dagster_storage_url:
        url = db.normalise_url(settings.dagster_storage_url)
    else:
        shop = db.resolve_url(settings)
        try:
            db.ensure_database(shop, DAGSTER_DATABASE)
        except sa.exc.DBAPIError as exc:
            raise HistoryError(
                f"could not create database '{DAGSTER_DATABASE}' for the run history on "
                f"{db.safe_url(shop)}: {db.describe_db_error(exc)}; create it, or set "
                "LIFECYCLE_DAGSTER_STORAGE_URL to a PostgreSQL database lifecycle may use"
            ) from None
        url = shop.set(database=DAGSTER_DATABASE)
    # dagster-postgres is written for psycopg2 (NOTIFY with a bound channel payload), and
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, so the driver is named.
    return url.set(drivername="postgresql+psycopg2")


def keep_run_files_private() -> None:
    """Makes every file this process creates from now on readable by its owner only.

    Dagster's compute log manager creates its folders and files with the process's umask (0755 and
    0644 by default) and has no setting of its own; a step's output may hold what a failing
    statement quoted, so the processes that run steps (the CLI, the code server and its run
    workers, `make ui`) set this before any run starts.
    """
    os.umask(PRIVATE_UMASK)


def instance_config(url: URL, home: Path) -> dict:
    """The dagster.yaml mapping: all three storages in PostgreSQL, compute logs in DAGSTER_HOME
    (private, see keep_run_files_private), the run queue, one slot per pool, no telemetry, and
    tick retention (runs themselves are pruned by the nightly `pruned_run_history` step).

    Pools are enforced per step (`granularity: op`), so a run started in-process by the CLI
    waits for the slot too, not only runs the daemon dequeues; `default_limit: 1` gives the
    one pool, names.SHOP_REWRITE_POOL, its single slot (docs/deployment.md).
    """
    return {
        "storage": {"postgres": {"postgres_url": url.render_as_string(hide_password=False)}},
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
        },
        "concurrency": {"pools": {"granularity": "op", "default_limit": 1}},
        "compute_logs": {
            "module": "dagster._core.storage.local_compute_log_manager",
            "class": "LocalComputeLogManager",
            "config": {"base_dir": str(home / "storage")},
        },
        "telemetry": {"enabled": False},
        "retention": TICK_RETENTION,
    }


def write_instance_config(settings: Settings) -> Path:
    """Writes DAGSTER_HOME/dagster.yaml for `settings` and returns DAGSTER_HOME.

    A dagster.yaml written by someone else is left alone. The file is replaced atomically
    (a running webserver never reads half of it) and is readable by its owner only, since a
    URL may carry a password (prefer ~/.pgpass, which psycopg2 reads, to keep it out).
    """
    home = private_dir(settings.dagster_home)
    path = home / "dagster.yaml"
    if path.exists() and not path.read_text(encoding="utf-8").startswith(_MARKER):
        return home
    text = _HEADER + yaml.safe_dump(instance_config(storage_url(settings), home), sort_keys=False)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_private(path, text.encode("utf-8"))
    return home


def open_instance(settings: Settings) -> dg.DagsterInstance:
    """The Dagster instance the settings describe, its dagster.yaml written first.

    Dagster is imported here rather than with the module: the CLI reads where the history lives
    (`storage_url`) in every verb, and opens the instance in few of them."""
    import dagster as dg

    home = write_instance_config(settings)
    # dagster-postgres retries a failed connection for a quarter of a minute and then reports
    # only "too many retries"; one probe first says at once what is wrong.
    url = storage_url(settings)
    probe = sa.create_engine(
        db.normalise_url(url), poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5}
    )
    try:
        with probe.connect():
            pass
    except sa.exc.OperationalError as exc:
        # A connection error has no SQLSTATE detail; libpq's own line (server, database, role) does.
        reason = str(exc.orig).strip().splitlines()[0].rsplit("FATAL:", 1)[-1].strip()
        raise HistoryError(
            f"could not open the run history at {db.safe_url(url)}: {reason}; "
            "check LIFECYCLE_DAGSTER_STORAGE_URL (the database must exist)"
        ) from None
    finally:
        probe.dispose()
    return dg.DagsterInstance.from_config(str(home))
