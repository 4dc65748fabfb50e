"""Names of jobs, and of the assets and checks whose figures the run history is read for.

The jobs are defined with these names (sensors/); the asset and check names are their functions'
names in assets/, and tests/test_definitions.py holds the two to each other.
"""

NIGHTLY_JOB = "nightly_lifecycle"
DATA_REQUESTS_JOB = "data_requests"

DUE_ORDERS = "due_orders"  # kept_by_open_case, anomalies
ERASED_STORAGE = "erased_purged_storage"  # ran
OVERDUE_CHECK = "no_overdue_personal_data"  # overdue_orders

# The Dagster pool of every step that rewrites shop tables (one slot: dagster.yaml's default_limit).
SHOP_REWRITE_POOL = "shop_rewrite"
