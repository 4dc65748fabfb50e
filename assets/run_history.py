"""The run history's own retention, as the last step of the night (orchestration/run_retention.py)."""

from datetime import timedelta

import dagster as dg

from orchestration import names
from orchestration.resources import ShopDatabase
from orchestration.run_retention import prune


@dg.asset(
    group_name="evidence", kinds={"dagster"}, owners=["team:data"], deps=[names.LEDGER_ANCHOR]
)
def pruned_run_history(
    context: dg.AssetExecutionContext, shop: ShopDatabase
) -> dg.MaterializeResult:
    """Runs older than the policy's run_history.keep_days leave the history; their figures stay in lifecycle."""
    older_than = shop.as_of() - timedelta(days=shop.policy().run_history.keep_days)
    pruned = prune(context.instance, shop.engine(), older_than, context.run.run_id)
    return dg.MaterializeResult(metadata=pruned.metadata())


run_history_assets = [pruned_run_history]
