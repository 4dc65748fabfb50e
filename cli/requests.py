"""`lifecycle requests`: customers' data requests, on demand."""

import click

from cli.context import engine_for, fail_cleanly, leave, migrated, pass_settings, run_job
from lifecycle.policy import load_policy
from lifecycle.requests.deadlines import open_requests
from lifecycle.requests.exports import EXPORTS_SUBDIR
from lifecycle.settings import Settings
from orchestration import names


@click.group(name="requests")
def requests_group() -> None:
    """Customers' access, correction and erasure requests in shop.data_requests (docs/requests.md)."""


@requests_group.command(name="run")
@pass_settings
@fail_cleanly
def run(settings: Settings) -> None:
    """Answers every open request now through the `data_requests` job, as the sensor would."""
    migrated(settings)
    leave(0 if run_job(settings, trigger="cli", job=names.DATA_REQUESTS_JOB) else 1)


@requests_group.command(name="export-dir")
@pass_settings
def export_dir(settings: Settings) -> None:
    """Prints the folder access exports are written to (LIFECYCLE_EXPORT_DIR, subfolder requests/)."""
    click.echo(str(settings.export_dir / EXPORTS_SUBDIR))


@requests_group.command(name="open")
@pass_settings
@fail_cleanly
def open_(settings: Settings) -> None:
    """Prints the requests not yet completed, oldest first, against the response deadline."""
    report = open_requests(engine_for(settings), load_policy(settings.policy_path))
    click.echo(
        f"{report.total} open, {report.overdue} overdue (deadline {report.deadline_days} days)"
    )
    if report.total:
        click.echo(report.table().markdown())
