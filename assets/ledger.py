"""The audit trail's anchor and its nightly verification (lifecycle/ledger, docs/compliance.md)."""

from datetime import timedelta

import dagster as dg

from lifecycle.assertions import ASSERTS
from lifecycle.ledger import seals
from lifecycle.ledger.chain import heads, shop_identity, verify
from orchestration import names
from orchestration.anchors import anchor_metadata, recorded_anchors, recorded_seals, seal_metadata
from orchestration.resources import ShopDatabase


@dg.asset(
    name=names.LEDGER_ANCHOR,
    group_name="evidence",
    kinds={"postgres"},
    owners=["team:data"],
    deps=["erased_purged_storage", "finished_erasure_requests"],
)
def ledger_anchor(shop: ShopDatabase) -> dg.MaterializeResult:
    """The last link of every audit chain after the night's writes, recorded outside the database."""
    engine = shop.engine()
    return dg.MaterializeResult(metadata=anchor_metadata(heads(engine), shop_identity(engine)))


@dg.asset_check(
    name=names.LEDGER_CHECK,
    asset=ledger_anchor,
    blocking=False,
    description=ASSERTS[names.LEDGER_CHECK],
)
def ledger_chain_intact(
    context: dg.AssetCheckExecutionContext, shop: ShopDatabase
) -> dg.AssetCheckResult:
    """Verifies every chain against the seals and anchors the run history holds, re-hashing in
    full each chain whose last full recompute is `ledger.full_verify_every_days` old (so the
    night's cost follows the links written since the last seal), then seals what it found intact
    and records the seals' hashes in this evaluation's metadata."""
    engine, identity = shop.engine(), shop_identity(shop.engine())
    result = verify(
        engine,
        recorded_anchors(context.instance, identity),
        seal_anchors=recorded_seals(context.instance, identity),
        full_every=timedelta(days=shop.policy().ledger.full_verify_every_days),
        now=shop.as_of(),
        seal=True,
    )
    anchored = seals.save(engine, result.new_seals)
    return dg.AssetCheckResult(
        passed=result.intact,
        description=result.summary(),
        metadata={**result.metadata(), **seal_metadata(anchored, identity)},
    )


ledger_assets = [ledger_anchor]
ledger_checks = [ledger_chain_intact]
