"""`lifecycle guard`: the leak guard's checks, now, with a table of findings.

The checks come from the Dagster-free list (lifecycle/guard/checks.py); Dagster is imported, and
its instance opened, only for the run-history scan.
"""

from datetime import UTC, datetime

import click

from cli.context import checked_policy, engine_for, fail_cleanly, leave, pass_settings
from lifecycle.guard.checks import GUARD_CHECKS, exports_check
from lifecycle.guard.key import load_key
from lifecycle.guard.reader import reader_engine
from lifecycle.guard.terminal import findings_table, status_line
from lifecycle.requests.exports import EXPORTS_SUBDIR
from lifecycle.settings import Settings


@click.command(name="guard")
@click.option(
    "--run-history/--no-run-history",
    default=True,
    show_default=True,
    help="Also scan Dagster's stored events and compute logs written since the last clean scan "
    "(the first time: the last nightly run's).",
)
@click.option("--run-id", help="Scan this run's stored events whole instead.")
@pass_settings
@fail_cleanly
def guard(settings: Settings, run_history: bool, run_id: str | None) -> None:
    """Runs the leak guard's checks now; prints a table of findings and exits 1 on any (docs/guard.md)."""
    engine = engine_for(settings)
    policy = checked_policy(settings, engine)
    key = load_key(settings.guard_secret, settings.guard_key_file)
    reader = reader_engine(engine, settings.guard_reader_password)
    today = datetime.now(UTC).date()
    results = []

    def run(checks) -> None:
        for check in checks:
            result = check.run(engine, policy, key, reader, today)
            results.append((check.name, result))
            click.echo(status_line(check.name, result))

    run([*GUARD_CHECKS, exports_check(settings.export_dir / EXPORTS_SUBDIR, datetime.now(UTC))])
    if run_history:
        # Dagster's import and instance cost about a second: paid only for the history scan.
        from orchestration.history_scan import run_history_check
        from orchestration.instance import open_instance

        with open_instance(settings) as instance:
            run([run_history_check(instance, [run_id] if run_id else None)])
    failed = [(name, result) for name, result in results if not result.passed]
    if not failed:
        click.echo(f"no leaks: {len(results)} checks passed")
        leave(0)  # Dagster's teardown would add most of a second
    findings = sum(len(result.findings) for _, result in failed)
    click.echo("")
    click.echo(findings_table(failed))
    click.echo(f"\n{findings} finding(s) in {len(failed)} check(s)")
    leave(1)
