"""What every verb starts from: the settings, the shop's engine and policy, and clean failures."""

from __future__ import annotations

import functools
import sys

import click
from sqlalchemy.engine import Engine

from cli import launch
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


def run_job(settings: Settings, trigger: str, job: str = names.NIGHTLY_JOB) -> None:
    """Runs `job` through Dagster, prints one line per step, and exits 1 if the run failed."""
    click.echo(f"running {job} …")
    result = launch.run_job(settings, job, trigger, progress=lambda line: click.echo(f"  {line}"))
    for line in launch.summary_lines(result.events):
        click.echo(f"  {line}")
    click.echo(
        f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'} "
        f"(history in {db.safe_url(storage_url(settings))})"
    )
    if not result.success:
        sys.exit(1)
