"""`lifecycle record`: the record of processing activities, from the policy and the measured history."""

from datetime import UTC, datetime
from pathlib import Path

import click

from cli.context import engine_for, fail_cleanly, pass_settings
from cli.documents import chosen_format, document_options
from lifecycle.files import write_private
from lifecycle.policy import load_policy
from lifecycle.record.build import RecordError, build_record
from lifecycle.record.render import render
from lifecycle.report.build import ReportError, parse_since
from lifecycle.settings import Settings
from orchestration.instance import open_instance


@click.command()
@document_options
@click.option("--since", default="30d", show_default=True, help="Period of the evidence.")
@pass_settings
@fail_cleanly
def record(settings: Settings, out: Path, fmt: str | None, since: str) -> None:
    """Writes the record of processing: purposes, data, recipients, retention, measures, evidence."""
    policy = load_policy(settings.policy_path)
    now = datetime.now(UTC)
    try:
        start = parse_since(since, now)
    except ReportError as exc:
        raise click.BadParameter(str(exc).removeprefix("--since: "), param_hint="--since") from None
    from orchestration.reporting import report_from_history  # Dagster, for this verb only

    with open_instance(settings) as instance:
        report = report_from_history(engine_for(settings), policy, instance, start, now)
    try:
        built = build_record(policy, report)
    except RecordError as exc:
        raise click.ClickException(str(exc)) from None
    fmt = chosen_format(out, fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_private(out, render(built, fmt).encode("utf-8"))
    click.echo(
        f"wrote {out} ({fmt}): record of processing for {built.controller}, evidence {built.period}"
    )
