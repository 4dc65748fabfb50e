"""The `lifecycle` command: set up the database, seed the demo shop, run the nightly job."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from lifecycle import db, schema
from lifecycle.retention import purge, standing
from lifecycle.policy import PolicyError, check_policy_against_database, load_policy
from lifecycle.settings import Settings


def _settings() -> Settings:
    return Settings.from_env()


def _engine(settings: Settings):
    try:
        url = db.resolve_url(settings)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    return db.engine_for(url.render_as_string(hide_password=False))


def _fail_cleanly(func):
    """Turns the domain's own errors into one clear line and exit status 1, not a stack trace."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except PolicyError as exc:
            raise click.ClickException("policy is not usable:\n  " + "\n  ".join(exc.problems)) from None
        except (purge.PurgeError, RuntimeError) as exc:
            raise click.ClickException(str(exc)) from None
    return wrapper


@click.group()
def main() -> None:
    """Keeps the shop's privacy promises: retention purge, published figures, checks."""


@main.group(name="db")
def db_group() -> None:
    """The shop database (embedded PostgreSQL unless LIFECYCLE_DATABASE_URL is set)."""


@db_group.command()
@_fail_cleanly
def upgrade() -> None:
    """Creates or migrates the schemas to the newest revision (safe to run again)."""
    engine = _engine(_settings())
    schema.upgrade(engine)
    click.echo(f"database at revision {schema.current_revision(engine)} ({db.safe_url(engine.url)})")


@db_group.command()
def url() -> None:
    """Prints the database URL in use (password hidden)."""
    click.echo(db.safe_url(_engine(_settings()).url))


@main.group(name="policy")
def policy_group() -> None:
    """The policy file."""


@policy_group.command(name="check")
@click.option("--file", "path", type=click.Path(path_type=Path), help="Policy file (default: LIFECYCLE_POLICY or policy.yaml).")
@_fail_cleanly
def policy_check(path: Path | None) -> None:
    """Validates the policy file, and that every table and column it names exists."""
    settings = _settings()
    policy = load_policy(path or settings.policy_path)
    with _engine(settings).connect() as conn:
        check_policy_against_database(policy, conn)
    click.echo(f"{policy.path.name}: version {policy.version}, sha256 {policy.short_hash}: valid")


@main.command()
@_fail_cleanly
def due() -> None:
    """Prints how the orders stand against the policy right now, without changing anything."""
    settings = _settings()
    engine = _engine(settings)
    policy = load_policy(settings.policy_path)
    with engine.connect() as conn:
        check_policy_against_database(policy, conn)
    summary = standing.summarize(engine, policy, datetime.now(timezone.utc))
    for key, value in summary.metadata(policy).items():
        click.echo(f"{key:>28}: {value}")


@main.command()
@click.option("--orders", default=50_000, show_default=True, help="How many orders to seed.")
@click.option("--seed", default=7, show_default=True, help="Seed for Faker and the generator.")
@_fail_cleanly
def demo(orders: int, seed: int) -> None:
    """Seeds a deterministic synthetic shop and runs the nightly job once."""
    from lifecycle import synthetic

    settings = _settings()
    engine = _engine(settings)
    schema.upgrade(engine)
    click.echo(f"database: {db.safe_url(engine.url)}")
    carriers = list(load_policy(settings.policy_path).logistics.carriers)  # paid/shipped orders get one
    report = synthetic.seed_shop(engine, orders=orders, seed=seed, carriers=carriers,
                                 on_progress=lambda m: click.echo(f"  {m}"))
    click.echo(f"seeded {report.orders:,} orders, {report.items:,} order lines, {report.cases:,} after-sales cases")
    _run_nightly(settings, trigger="demo")


@main.command()
@_fail_cleanly
def nightly() -> None:
    """Runs the `nightly_lifecycle` job once through Dagster, recorded in its run history."""
    settings = _settings()
    schema.upgrade(_engine(settings))
    _run_nightly(settings, trigger="cli")


@main.command(name="instance")
@_fail_cleanly
def instance_command() -> None:
    """Writes DAGSTER_HOME/dagster.yaml (run history in PostgreSQL) and prints DAGSTER_HOME."""
    from lifecycle import history

    settings = _settings()
    home = history.write_instance_config(settings)
    click.echo(f"run history in {db.safe_url(history.storage_url(settings))}", err=True)
    click.echo(str(home))


@main.command()
@click.option("--since", default="30d", show_default=True, help="Period: 30d, 12h, 6w, or a date such as 2026-10-01.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="File to write.")
@click.option("--format", "fmt", type=click.Choice(["html", "md", "json"]),
              help="Default: from the --out suffix (.md, .json), else html.")
@click.option("--ui-url", help="Dagster UI address for links to each run, e.g. http://127.0.0.1:3000.")
@_fail_cleanly
def report(since: str, out: Path, fmt: str | None, ui_url: str | None) -> None:
    """Writes the compliance report: every night of the period, from the ledger and the run history."""
    from lifecycle import history, report_format
    from lifecycle import report as compliance

    settings = _settings()
    engine = _engine(settings)
    policy = load_policy(settings.policy_path)
    now = datetime.now(timezone.utc)
    try:
        start = compliance.parse_since(since, now)
    except compliance.ReportError as exc:
        raise click.BadParameter(str(exc).removeprefix("--since: "), param_hint="--since") from None
    with history.open_instance(settings) as instance:
        built = compliance.build_report(engine, policy, instance, start, now, ui_url)
    fmt = fmt or {".md": "md", ".json": "json"}.get(out.suffix.lower(), "html")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report_format.render(built, fmt), encoding="utf-8")
    runs = sum(1 for night in built.nights if night.run_id)
    click.echo(f"wrote {out} ({fmt}): {runs} nightly runs over {len(built.days)} days")
    for ok, text in built.verdict():
        click.echo(f"  {'ok' if ok else '!!'}  {text}")


@main.command(name="guard")
@click.option("--run-history/--no-run-history", default=True, show_default=True,
              help="Also scan Dagster's stored events of the last nightly run.")
@click.option("--run-id", help="Scan this run's stored events instead of the last nightly run's.")
@_fail_cleanly
def guard_command(run_history: bool, run_id: str | None) -> None:
    """Runs the leak guard's checks now; prints a table of findings and exits 1 on any (docs/guard.md)."""
    from lifecycle import guard
    from lifecycle.fingerprint import load_key

    settings = _settings()
    engine = _engine(settings)
    policy = load_policy(settings.policy_path)
    with engine.connect() as conn:
        check_policy_against_database(policy, conn)
    key = load_key(settings)

    def show(report: guard.CheckReport) -> None:
        click.echo(guard.status_line(report))

    if run_history:
        from lifecycle import history

        with history.open_instance(settings) as instance:
            runs = [run_id] if run_id else guard.nightly_runs_to_scan(instance)
            reports = guard.run_all(engine, policy, key, instance, runs, on_check=show)
    else:
        reports = guard.run_all(engine, policy, key, on_check=show)
    findings = [f for r in reports for f in r.findings]
    if not findings:
        click.echo(f"no leaks: {len(reports)} checks passed")
        return
    click.echo("")
    click.echo(guard.findings_table(findings))
    click.echo(f"\n{len(findings)} finding(s) in {sum(not r.passed for r in reports)} check(s)")
    sys.exit(1)


@main.group(name="logistics")
def logistics_group() -> None:
    """The carrier hand-off (docs/logistics.md)."""


@logistics_group.command(name="refresh")
@_fail_cleanly
def logistics_refresh() -> None:
    """Refreshes the hand-off and carrier roles now, proves them, then writes the carrier files.

    The same steps and checks as the nightly job; files are written only if every check passes.
    """
    import uuid

    from lifecycle import logistics

    settings = _settings()
    engine = _engine(settings)
    policy = load_policy(settings.policy_path)
    with engine.connect() as conn:
        check_policy_against_database(policy, conn)
    run_id = f"cli-{uuid.uuid4().hex[:12]}"
    access = logistics.ensure_carrier_access(engine, policy)
    report = logistics.refresh_handoff(engine, policy, run_id=run_id)
    click.echo(f"hand-off refreshed: {report.inserted} new, {report.updated} changed, "
               f"{report.removed_total} removed {report.removed or ''}")
    for carrier, rows in report.rows_by_carrier.items():
        click.echo(f"  {carrier:>24}: {rows} pending deliveries")
    if report.unmatched_carrier:
        click.echo(f"  {report.unmatched_carrier} pending orders name a carrier the policy does not list "
                   f"(order ids {report.unmatched_sample_ids})")
    click.echo(f"carrier roles: {', '.join(access.roles) or 'none'}")
    failed = [problem for check in (logistics.check_columns, logistics.check_finished_orders_gone,
                                    logistics.check_carrier_isolation)
              for problem in check(engine, policy).problems]
    if failed:
        raise click.ClickException("checks failed, no carrier file was written:\n  " + "\n  ".join(failed))
    folder = Path(settings.export_dir) / logistics.EXPORT_PURPOSE
    files = logistics.export_carrier_files(engine, policy, folder, run_id=run_id)
    click.echo(f"checks passed; carrier files in {folder}: {files.metadata()['rows_by_carrier']}")


@main.group(name="requests")
def requests_group() -> None:
    """Customers' access, correction and erasure requests in shop.data_requests (docs/requests.md)."""


@requests_group.command(name="run")
@_fail_cleanly
def requests_run() -> None:
    """Answers every open request now through the `data_requests` job, as the sensor would."""
    settings = _settings()
    schema.upgrade(_engine(settings))
    _run_nightly(settings, trigger="cli", job="data_requests")


@requests_group.command(name="export-dir")
def requests_export_dir() -> None:
    """Prints the folder access exports are written to (LIFECYCLE_EXPORT_DIR, subfolder requests/)."""
    from lifecycle import requests

    click.echo(str(Path(_settings().export_dir) / requests.EXPORTS_SUBDIR))


@requests_group.command(name="open")
@_fail_cleanly
def requests_open() -> None:
    """Prints the requests not yet completed, oldest first, against the response deadline."""
    from lifecycle import requests

    settings = _settings()
    report = requests.open_requests(_engine(settings), load_policy(settings.policy_path))
    click.echo(f"{report.total} open, {report.overdue} overdue (deadline {report.deadline_days} days)")
    click.echo(report.markdown())


def _run_nightly(settings: Settings, trigger: str, job: str = "nightly_lifecycle") -> None:
    # The job is assembled in definitions.py, outside this package; import it only here so the
    # domain core stays importable (and testable) without the Dagster layer.
    from definitions import defs
    from lifecycle import history

    # An unusable policy still launches the run: it fails on its first step and stays in the
    # history (and raises the run-failure alert) as the night that did not happen.
    tags = history.policy_tags(settings.policy_path, trigger)
    if history.TAG_POLICY_PROBLEM in tags:
        click.echo(f"policy is not usable: {tags[history.TAG_POLICY_PROBLEM]}", err=True)
    click.echo(f"running {job} …")
    with history.open_instance(settings) as instance:
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, tags=tags, raise_on_error=False,
            # The run history keeps every event; the terminal shows the summary below instead.
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
    for event in result.all_events:
        if event.is_step_materialization:
            mat = event.step_materialization_data.materialization
            if mat.partition:  # one per rebuilt sales day; the step's own summary follows
                continue
            shown = {k: v.value for k, v in mat.metadata.items() if k in _SHOWN}
            click.echo(f"  {mat.asset_key.to_user_string()}: {shown}")
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            check = event.event_specific_data
            click.echo(f"  check {check.check_name}: {'passed' if check.passed else 'FAILED'}")
    click.echo(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'} "
               f"(history in {db.safe_url(history.storage_url(settings))})")
    if not result.success:
        sys.exit(1)


_SHOWN = {"eligible", "purged", "kept_by_open_case", "stale", "anomalies", "oldest_overdue_days",
          "ran", "seconds", "policy_version", "bytes_before", "bytes_after", "rows_by_carrier",
          "removed_by_reason", "mode", "days_rebuilt", "rows_written", "units_folded", "units_withheld",
          "table_rows", "rows", "handled", "by_status", "rejected_by_reason", "failed_request_ids",
          "orders_cleared", "orders_pending", "exports_written", "open", "overdue", "overdue_request_ids",
          "requests_done", "deleted"}
