"""The `lifecycle` command: one group of verbs per capability, each in its own module.

Settings are read from the environment once, when the command starts, and handed to the verb.
"""

import click

from cli import database, guard, logistics, policy, report, requests, retention
from cli.context import CleanGroup
from lifecycle.settings import Settings


@click.group(cls=CleanGroup)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Keeps the shop's privacy promises: retention purge, published figures, checks."""
    ctx.obj = Settings.from_env()


for command in (
    database.db_group,
    policy.policy_group,
    retention.due,
    retention.demo,
    retention.nightly,
    report.report,
    report.instance,
    guard.guard,
    logistics.logistics_group,
    requests.requests_group,
):
    main.add_command(command)
