"""A backfill run started in the UI carries the policy tags every run carries.

The daemon launches a single-run backfill of `sales_volume_daily` as a run tagged
`dagster/backfill` with the partition range; nothing in the launch path adds lifecycle's tags,
so ShopDatabase.setup_for_execution stamps them when the run starts. This runs the same job
with the tags the daemon sets and reads the stamped tags back from the instance.
"""

import dagster as dg

from assets.sales import SALES_DAYS, refreshed_sales_volume, sales_assets, sales_volume_daily
from orchestration import tags
from tests.dagster.test_sales_assets import YESTERDAY, seed, shop_resource


def test_a_backfill_run_is_stamped_with_policy_version_short_hash_and_trigger(
    engine, database_url, policy
):
    seed(engine)
    shop = shop_resource(database_url)
    with dg.DagsterInstance.ephemeral() as instance:
        dg.materialize(
            [*sales_assets],
            selection=[refreshed_sales_volume],
            instance=instance,
            resources={"shop": shop},
        )
        days = instance.get_dynamic_partitions(SALES_DAYS.name)
        assert days[-1] == YESTERDAY.isoformat()
        result = dg.materialize(
            [*sales_assets],
            selection=[sales_volume_daily],
            instance=instance,
            resources={"shop": shop},
            tags={
                "dagster/backfill": "abcdefgh",
                "dagster/asset_partition_range_start": days[0],
                "dagster/asset_partition_range_end": days[-1],
            },
        )
        assert result.success
        stamped = instance.get_run_by_id(result.run_id).tags
    assert stamped[tags.TAG_TRIGGER] == "backfill"
    assert stamped[tags.TAG_POLICY_VERSION] == policy.version
    assert stamped[tags.TAG_POLICY_HASH] == policy.sha256[: tags.HASH_CHARS]
    assert len(stamped[tags.TAG_POLICY_HASH]) == 12
