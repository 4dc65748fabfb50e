"""The audit trail's anchor and its nightly verification (lifecycle/ledger, docs/compliance.md)."""

import dagster as dg

from lifecycle.assertions import ASSERTS
from lifecycle.ledger.chain import heads, shop_identity, verify
from orchestration import names
from orchestration.anchors import anchor_metadata, recorded_anchors
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
    """Recomputes every chain and checks every anchor the run history holds."""
    engine = shop.engine()
    result = verify(engine, recorded_anchors(context.instance, shop_identity(engine)))
    return dg.AssetCheckResult(
        passed=result.intact, description=result.summary(), metadata=result.metadata()
    )


ledger_assets = [ledger_anchor]
ledger_checks = [ledger_chain_intact]
