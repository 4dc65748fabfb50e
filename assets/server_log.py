"""PostgreSQL's server log: a warning, on the purge, while the server would log statements' text or
parameters (lifecycle/retention/server_log.py, docs/retention.md "PostgreSQL's server log").

Non-blocking and WARN: the setting is the DBA's to change, and a night's purge is right either way;
the check makes the copy the project cannot remove visible in every run."""

import dagster as dg

from assets.check_results import as_asset_check_result
from assets.retention import purged_orders
from lifecycle.assertions import ASSERTS
from lifecycle.retention.server_log import server_log_settings
from orchestration.resources import ShopDatabase


@dg.asset_check(
    asset=purged_orders, blocking=False, description=ASSERTS["server_log_keeps_no_values"]
)
def server_log_keeps_no_values(shop: ShopDatabase) -> dg.AssetCheckResult:
    """Reads the server's logging settings; a risky one warns rather than stops the night."""
    result = server_log_settings(shop.engine())
    return as_asset_check_result(result, severity=dg.AssetCheckSeverity.WARN)


server_log_checks = [server_log_keeps_no_values]
