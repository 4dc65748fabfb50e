"""`lifecycle due`, `demo` and `nightly`: the retention purge and the nightly job."""

from datetime import UTC, datetime

import click

from cli import summary
from cli.context import (
    checked_policy,
    engine_for,
    fail_cleanly,
    leave,
    migrated,
    pass_settings,
    run_job,
)
from lifecycle import db
from lifecycle.policy import load_policy
from lifecycle.retention import standing
from lifecycle.settings import Settings


@click.command()
@pass_settings
@fail_cleanly
def due(settings: Settings) -> None:
    """Prints how the orders stand against the policy right now, without changing anything."""
    engine = engine_for(settings)
    policy = checked_policy(settings, engine)
    standing_summary = standing.summarize(engine, policy, datetime.now(UTC))
    figures = standing_summary.metadata(policy)
    click.echo(
        f"orders against policy {policy.version} ({policy.short_hash}) "
        f"as of {figures['as_of'][:16].replace('T', ' ')} UTC, nothing changed:"
    )
    for line in list(summary.asset_lines("standing", figures))[1:]:
        click.echo(line)


@click.command()
@click.option("--orders", default=50_000, show_default=True, help="How many orders to seed.")
@click.option("--seed", default=7, show_default=True, help="Seed for Faker and the generator.")
@pass_settings
@fail_cleanly
def demo(settings: Settings, orders: int, seed: int) -> None:
    """Seeds a deterministic synthetic shop and runs the nightly job once."""
    # Faker and the generator cost a second of import; only the demo seeds, so only it pays.
    from lifecycle import synthetic

    engine = migrated(settings)
    click.echo(f"database: {db.safe_url(engine.url)}")
    carriers = list(
        load_policy(settings.policy_path).logistics.carriers
    )  # paid/shipped orders get one
    seeded = synthetic.seed_shop(
        engine,
        orders=orders,
        seed=seed,
        carriers=carriers,
        on_progress=lambda m: click.echo(f"  {m}"),
    )
    click.echo(
        f"seeded {seeded.orders:,} orders, {seeded.items:,} order lines, {seeded.cases:,} after-sales cases"
    )
    succeeded = run_job(settings, trigger="demo")
    click.echo(
        "next: `make ui` (the Dagster UI), `make report`, `lifecycle db shell` (psql on the shop)"
    )
    if not settings.database_url:
        click.echo(
            "the embedded PostgreSQL keeps running for the UI and the CLI; "
            "`make stop` (or `lifecycle db stop`) stops it"
        )
    leave(0 if succeeded else 1)


@click.command()
@pass_settings
@fail_cleanly
def nightly(settings: Settings) -> None:
    """Runs the `nightly_lifecycle` job once through Dagster, recorded in its run history."""
    migrated(settings)
    leave(0 if run_job(settings, trigger="cli") else 1)
