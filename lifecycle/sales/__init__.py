"""Published sales volume: units per day, sku and region that no one can single a buyer out of.

The one analytical use the privacy statement allows ("count platform commodity sales volume,
optimize product inventory allocation and adjust product line layout"), built in the database.
One module per job: `source` (the raw tables as the policy maps them), `capture` (triggers that
record which hours changed), `daily` (the k rule, the nightly refresh and backfills of
analytics.sales_volume_daily), `planning` (weekly demand, product-line summary, rolled up),
`rollup` (hierarchies and remainders), `differencing` (the guard's audit), `utility` (what a
planner gets), `previews` and `charts` (what a person looks at). docs/sales.md explains the design.
"""
