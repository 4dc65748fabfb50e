"""`lifecycle report` and `instance`: the compliance report and the run history behind it."""

from datetime import UTC, datetime
from pathlib import Path

import click

from cli.context import engine_for, fail_cleanly, leave, pass_settings
from cli.documents import chosen_format, document_options
from lifecycle import db
from lifecycle.files import write_private
from lifecycle.guard.documents import raw_values_in_document, refusal
from lifecycle.guard.key import load_key
from lifecycle.policy import load_policy
from lifecycle.report.build import ReportError, parse_since, plural
from lifecycle.report.render import render
from lifecycle.settings import Settings
from orchestration.instance import open_instance, storage_url, write_instance_config


@click.command()
@click.option(
    "--since",
    default="30d",
    show_default=True,
    help="Period: 30d, 12h, 6w, or a date such as 2026-10-01.",
)
@document_options
@click.option(
    "--ui-url", help="Dagster UI address for links to each run, e.g. http://127.0.0.1:3000."
)
@pass_settings
@fail_cleanly
def report(settings: Settings, since: str, out: Path, fmt: str | None, ui_url: str | None) -> None:
    """Writes the compliance report: every night of the period, from the ledger and the run history."""
    engine = engine_for(settings)
    policy = load_policy(settings.policy_path)
    now = datetime.now(UTC)
    try:
        start = parse_since(since, now)
    except ReportError as exc:
        raise click.BadParameter(str(exc).removeprefix("--since: "), param_hint="--since") from None
    # Dagster is loaded only now, for the nights not kept in the shop yet (orchestration/reporting.py).
    from orchestration.reporting import report_from_history

    with open_instance(settings) as instance:
        built = report_from_history(engine, policy, instance, start, now, ui_url)
    fmt = chosen_format(out, fmt)
    text = render(built, fmt)
    # The report has no fixed folder to scan later: it is checked for raw values before it exists.
    key = load_key(settings.guard_secret, settings.guard_key_file)
    checked = raw_values_in_document(engine, policy, key, out.name, text)
    if not checked.passed:
        raise click.ClickException(refusal(out.name, checked))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_private(out, text.encode("utf-8"))
    runs = sum(1 for night in built.nights if night.run_id)
    click.echo(
        f"wrote {out} ({fmt}): {plural(runs, 'nightly run')} over {plural(len(built.days), 'day')}"
    )
    for ok, text in built.verdict():
        click.echo(f"  {'--' if ok is None else 'ok' if ok else '!!'}  {text}")
    leave(0)  # with Dagster loaded, the interpreter's teardown would add most of a second


@click.command()
@pass_settings
@fail_cleanly
def instance(settings: Settings) -> None:
    """Writes DAGSTER_HOME/dagster.yaml (run history in PostgreSQL) and prints DAGSTER_HOME."""
    home = write_instance_config(settings)
    click.echo(f"run history in {db.safe_url(storage_url(settings))}", err=True)
    click.echo(str(home))
