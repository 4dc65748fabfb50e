"""`lifecycle ledger verify`: recomputes the audit trail's hash chains and checks their anchors."""

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
@click.option("--since", help="Only links recorded since: 30d, 12h, 6w or a date (2026-10-01).")
@pass_settings
@fail_cleanly
def verify(settings: Settings, since: str | None) -> None:
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
    from orchestration.anchors import recorded_anchors  # Dagster, for this verb only

    with open_instance(settings) as instance:
        anchors = recorded_anchors(instance, shop_identity(engine), start)
    result = verify_chains(engine, anchors, start)
    for span in result.ranges:
        click.echo(
            f"  {span.chain:<16} {span.rows:>12,} rows  {span.links:>8,} links"
            + (f"  ({span.first_seq}..{span.last_seq})" if span.links else "")
        )
    click.echo(f"ledger {result.summary()}")
    if not result.intact:
        raise SystemExit(1)
