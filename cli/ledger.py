"""`lifecycle ledger verify`: verifies the audit trail's hash chains and checks their anchors.

Sealed by default, as the nightly check: the links written since the last seal the run history
recorded are re-hashed and the sealed rows are proven untouched by one cheap pass, so an on-call
person answers in a second what the nightly would say. `--full` re-hashes every link, for an audit
or after a restore: it is the only mode that also finds a data file edited in place
(docs/compliance.md). The command never writes a seal; only the nightly check does.
"""

from datetime import UTC, datetime

import click

from cli.context import engine_for, fail_cleanly, pass_settings
from lifecycle.ledger.chain import shop_identity
from lifecycle.ledger.chain import verify as verify_chains
from lifecycle.report.build import ReportError, parse_since
from lifecycle.settings import Settings
from orchestration.instance import open_instance


@click.group(name="ledger")
def ledger_group() -> None:
    """The hash-chained audit trail."""


@ledger_group.command()
@click.option(
    "--since",
    help="With --full, or for a chain without a seal: only links recorded since: 30d, 12h, 6w "
    "or a date (2026-10-01).",
)
@click.option(
    "--full",
    is_flag=True,
    help="Re-hash every link's rows instead of trusting the last seal (slower; also finds a data "
    "file edited in place).",
)
@pass_settings
@fail_cleanly
def verify(settings: Settings, since: str | None, full: bool) -> None:
    """Exit 0 when every chain and anchor holds; exit 1 naming the first broken link."""
    start = None
    if since:
        try:
            start = parse_since(since, datetime.now(UTC))
        except ReportError as exc:
            raise click.BadParameter(
                str(exc).removeprefix("--since: "), param_hint="--since"
            ) from None
    engine = engine_for(settings)
    from orchestration.anchors import recorded_anchors, recorded_seals  # Dagster, this verb only

    identity = shop_identity(engine)
    with open_instance(settings) as instance:
        anchors = recorded_anchors(instance, identity, start)
        sealed = recorded_seals(instance, identity)
    result = verify_chains(engine, anchors, start, seal_anchors=sealed, full=full)
    for span in result.ranges:
        click.echo(
            f"  {span.chain:<16} {span.rows:>12,} rows  {span.links:>8,} links"
            + (f"  ({span.first_seq}..{span.last_seq})" if span.links else "")
            + f"  {span.mode}"
        )
    click.echo(f"ledger {result.summary()}")
    if not result.intact:
        raise SystemExit(1)
