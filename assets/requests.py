"""Customers' data requests: answering them, finishing waiting erasures, and their deadlines."""

import dagster as dg

from assets.metadata import compact, table
from assets.retention import purged_orders
from lifecycle.assertions import ASSERTS
from lifecycle.orders import SAMPLE_IDS
from lifecycle.requests.deadlines import open_requests
from lifecycle.requests.exports import EXPORTS_SUBDIR, delete_expired_exports
from lifecycle.requests.finishing import finish_pending_erasures
from lifecycle.requests.handling import handle_requests
from orchestration.resources import ExportFolder, ShopDatabase


class RequestBatch(dg.Config):
    """Which requests one run answers (the sensor's batch); empty means every open one."""

    request_ids: list[int] = []


def _failed(what: str, failed: dict[int, str], metadata: dict) -> dg.Failure:
    listed = "; ".join(f"request {rid}: {why}" for rid, why in sorted(failed.items())[:20])
    return dg.Failure(
        description=f"{len(failed)} {what} rolled back and stay open for the next run: {listed}",
        metadata=metadata,
    )


# On demand: the sensor's job answers requests; the nightly job leaves this asset out (sensors/schedules.py).
@dg.asset(
    group_name="requests",
    kinds={"postgres"},
    owners=["team:data"],
    tags={"lifecycle/on_demand": "true"},
)
def handled_data_requests(
    context: dg.AssetExecutionContext,
    config: RequestBatch,
    shop: ShopDatabase,
    exports: ExportFolder,
) -> dg.MaterializeResult:
    """Answers open access, correction and erasure requests; each result says what was done and why not."""
    report = handle_requests(
        shop.engine(),
        shop.policy(),
        exports.folder(EXPORTS_SUBDIR),
        run_id=context.run.run_id,
        request_ids=config.request_ids or None,
        as_of=shop.as_of(),
        on_request=lambda rid, kind, status: context.log.info(f"request {rid} ({kind}): {status}"),
    )
    if report.failed:
        raise _failed("request(s) failed", report.failed, report.metadata())
    return dg.MaterializeResult(metadata=compact(report.metadata()))


@dg.asset(group_name="requests", kinds={"postgres"}, owners=["team:data"], deps=[purged_orders])
def finished_erasure_requests(
    context: dg.AssetExecutionContext, shop: ShopDatabase
) -> dg.MaterializeResult:
    """Clears what erasure requests were waiting for (delivery, an open case) once erasable; done then."""
    report = finish_pending_erasures(
        shop.engine(), shop.policy(), run_id=context.run.run_id, as_of=shop.as_of()
    )
    if report.failed:
        raise _failed("waiting erasure(s) failed", report.failed, report.metadata())
    return dg.MaterializeResult(metadata=compact(report.metadata()))


@dg.asset(group_name="requests", kinds={"filesystem"}, owners=["team:data"])
def expired_request_exports(
    context: dg.AssetExecutionContext, shop: ShopDatabase, exports: ExportFolder
) -> dg.MaterializeResult:
    """Deletes access exports older than `requests.export_retention_days`: no copy outlives its purpose."""
    report = delete_expired_exports(
        shop.engine(),
        shop.policy(),
        exports.folder(EXPORTS_SUBDIR),
        run_id=context.run.run_id,
        as_of=shop.as_of(),
    )
    return dg.MaterializeResult(metadata=compact(report.metadata()))


@dg.asset(
    group_name="requests",
    kinds={"postgres"},
    owners=["team:data"],
    deps=[handled_data_requests, finished_erasure_requests],
)
def open_data_requests(
    context: dg.AssetExecutionContext, shop: ShopDatabase
) -> dg.MaterializeResult:
    """Requests not yet completed, by age against the response deadline (a table in the UI)."""
    report = open_requests(shop.engine(), shop.policy(), shop.as_of())
    metadata = report.metadata()
    metadata["open_by_age"] = table(metadata["open_by_age"])
    return dg.MaterializeResult(metadata=compact(metadata))


@dg.asset_check(asset=open_data_requests, description=ASSERTS["no_overdue_data_requests"])
def no_overdue_data_requests(
    context: dg.AssetCheckExecutionContext, shop: ShopDatabase
) -> dg.AssetCheckResult:
    """Fails while a request stays unanswered (received or in progress) past `response_deadline_days`."""
    report = open_requests(shop.engine(), shop.policy(), shop.as_of())
    return dg.AssetCheckResult(
        passed=report.overdue == 0,
        metadata={
            "overdue": report.overdue,
            "response_deadline_days": report.deadline_days,
            # Only when some are overdue: a passing check shows no empty list.
            **(
                {"overdue_request_ids": report.overdue_ids[:SAMPLE_IDS]}
                if report.overdue_ids
                else {}
            ),
        },
    )


requests_assets = [
    handled_data_requests,
    finished_erasure_requests,
    expired_request_exports,
    open_data_requests,
]
requests_checks = [no_overdue_data_requests]
