"""`lifecycle logistics`: the carrier hand-off, on demand."""

import uuid

import click

from cli.context import checked_policy, engine_for, fail_cleanly, pass_settings
from cli.summary import format_value
from lifecycle.logistics import access, checks, files, handoff
from lifecycle.settings import Settings


@click.group(name="logistics")
def logistics_group() -> None:
    """The carrier hand-off (docs/logistics.md)."""


@logistics_group.command(name="refresh")
@pass_settings
@fail_cleanly
def refresh(settings: Settings) -> None:
    """Refreshes the hand-off and carrier roles now, proves them, then writes the carrier files.

    The same steps and checks as the nightly job; files are written only if every check passes.
    """
    engine = engine_for(settings)
    policy = checked_policy(settings, engine)
    run_id = f"cli-{uuid.uuid4().hex[:12]}"
    roles = access.ensure_carrier_access(engine, policy)
    report = handoff.refresh_handoff(engine, policy, run_id=run_id)
    click.echo(
        f"hand-off refreshed: {report.inserted} new, {report.updated} changed, "
        f"{report.removed_total} removed"
        + (f" ({format_value(report.removed)})" if report.removed else "")
    )
    for carrier, rows in report.rows_by_carrier.items():
        click.echo(f"  {carrier:>24}: {rows} pending deliveries")
    if report.unmatched_carrier:
        click.echo(
            f"  {report.unmatched_carrier} pending orders name a carrier the policy does not list "
            f"(order ids {report.unmatched_sample_ids})"
        )
    click.echo(f"carrier roles: {', '.join(roles.roles) or 'none'}")
    results = [
        check(engine, policy)
        for check in (
            checks.check_columns,
            checks.check_finished_orders_gone,
            checks.check_carrier_isolation,
        )
    ]
    failed = [result.description() for result in results if not result.passed]
    if failed:
        raise click.ClickException(
            "checks failed, no carrier file was written:\n  " + "\n  ".join(failed)
        )
    folder = settings.export_dir / files.EXPORT_PURPOSE
    written = files.export_carrier_files(engine, policy, folder, run_id=run_id)
    click.echo(f"checks passed; carrier files in {folder}:")
    for carrier, manifest in written.files.items():
        click.echo(f"  {carrier:>24}: {manifest['rows']} rows in {carrier}/{files.EXPORT_FILE}")
    for carrier, why in written.without_file.items():
        click.echo(f"  {carrier:>24}: no file, {why}")
