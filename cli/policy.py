"""`lifecycle policy`: the policy file."""

from pathlib import Path

import click

from cli.context import engine_for, fail_cleanly, pass_settings
from lifecycle.policy import check_policy_against_database, load_policy
from lifecycle.retention.server_log import server_log_settings
from lifecycle.settings import Settings


@click.group(name="policy")
def policy_group() -> None:
    """The policy file."""


@policy_group.command(name="check")
@click.option(
    "--file",
    "path",
    type=click.Path(path_type=Path),
    help="Policy file (default: LIFECYCLE_POLICY or policy.yaml).",
)
@pass_settings
@fail_cleanly
def check(settings: Settings, path: Path | None) -> None:
    """Validates the policy file, and that every table and column it names exists; warns (exit 0)
    while the PostgreSQL server would log statements' text or parameters (docs/retention.md)."""
    policy = load_policy(path or settings.policy_path)
    engine = engine_for(settings)
    with engine.connect() as conn:
        check_policy_against_database(policy, conn)
    click.echo(f"{policy.path.name}: version {policy.version}, sha256 {policy.short_hash}: valid")
    for finding in server_log_settings(engine).findings:
        click.echo(
            f"warning: PostgreSQL server log: {finding.column}: {finding.kind}; {finding.detail}"
        )
