"""The sensor that answers customers' data requests, and the job it launches.

Each tick launches at most one run for every open request that no run of this sensor is already
working on. The cursor remembers the batches in flight (by a tag on their run); once a batch's
run has finished, its requests that are still open failed in it and are retried on the next tick,
up to MAX_ATTEMPTS. That a request is never answered twice rests on the database, not the cursor:
the run answers each request under a row lock and only while it is still open.
"""

import json
import time
from dataclasses import dataclass, field

import dagster as dg

from assets.logistics import carrier_files, carrier_handoff
from assets.requests import RequestBatch, handled_data_requests, open_data_requests
from assets.retention import erased_purged_storage
from lifecycle.requests.handling import open_request_ids
from orchestration import names, tags
from orchestration.resources import ShopDatabase

BATCH_TAG = "lifecycle/request_batch"
IDS_TAG = "lifecycle/request_ids"
MAX_REQUESTS_PER_RUN = 200
MAX_ATTEMPTS = 3
TICK_SECONDS = 60

# In-process for the same reason as the nightly job: a few statements per step. The hand-off
# refresh and the carrier files follow the answers, so an order erased on request leaves the
# carrier's rows and file in the same run (it stayed there, with the name, phone and address the
# answer said were cleared, until the next night); the rewrite (erased_purged_storage) follows
# both, so an erasure leaves the data files in the same run too; it waits at most
# retention.erasure_lock_timeout_seconds for its lock.
data_requests_job = dg.define_asset_job(
    name=names.DATA_REQUESTS_JOB,
    selection=dg.AssetSelection.assets(
        handled_data_requests,
        carrier_handoff,
        carrier_files,
        erased_purged_storage,
        open_data_requests,
    ),
    executor_def=dg.in_process_executor,
    description="Answer customers' access, correction and erasure requests; erase cleared values from disk.",
)


@dataclass
class RequestCursor:
    """What the sensor remembers between ticks: batches in flight and failed attempts per request."""

    sequence: int = 0
    in_flight: dict[str, list[int]] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> "RequestCursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            sequence=data["sequence"],
            in_flight=data["in_flight"],
            attempts={int(k): v for k, v in data["attempts"].items()},
        )

    def dumps(self) -> str:
        return json.dumps(
            {
                "sequence": self.sequence,
                "in_flight": self.in_flight,
                "attempts": {str(k): v for k, v in sorted(self.attempts.items())},
            }
        )


def _batch_finished(instance: dg.DagsterInstance, batch: str) -> bool:
    # A batch whose run cannot be found was never launched (or was deleted): treat it as finished.
    runs = instance.get_runs(filters=dg.RunsFilter(tags={BATCH_TAG: batch}), limit=1)
    return not runs or runs[0].is_finished


def plan_tick(
    cursor: RequestCursor, open_ids: list[int], finished: set[str]
) -> tuple[list[int], list[int]]:
    """Updates `cursor` for one tick; returns (ids to launch now, ids given up after MAX_ATTEMPTS)."""
    still_open = set(open_ids)
    for batch in sorted(finished & set(cursor.in_flight)):
        for request_id in cursor.in_flight.pop(batch):
            if request_id in still_open:  # its run ended without answering it
                cursor.attempts[request_id] = cursor.attempts.get(request_id, 0) + 1
    cursor.attempts = {rid: n for rid, n in cursor.attempts.items() if rid in still_open}
    busy = {rid for ids in cursor.in_flight.values() for rid in ids}
    given_up = [rid for rid in open_ids if cursor.attempts.get(rid, 0) >= MAX_ATTEMPTS]
    launch = [rid for rid in open_ids if rid not in busy and rid not in given_up][
        :MAX_REQUESTS_PER_RUN
    ]
    return launch, given_up


@dg.sensor(
    job=data_requests_job,
    minimum_interval_seconds=TICK_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches one run for the open requests in shop.data_requests; retries failed ones.",
)
def data_requests_sensor(
    context: dg.SensorEvaluationContext, shop: ShopDatabase
) -> dg.SensorResult:
    """Picks up new (and failed) requests and launches one run that answers them all."""
    cursor = RequestCursor.parse(context.cursor)
    open_ids = open_request_ids(shop.engine())
    finished = {batch for batch in cursor.in_flight if _batch_finished(context.instance, batch)}
    launch, given_up = plan_tick(cursor, open_ids, finished)
    if given_up:
        context.log.warning(
            f"{len(given_up)} request(s) failed {MAX_ATTEMPTS} runs and are no longer retried "
            f"by the sensor (ids {given_up[:20]}); fix the cause, then `lifecycle requests run`"
        )
    if not launch:
        return dg.SensorResult(
            cursor=cursor.dumps(),
            skip_reason=dg.SkipReason(
                f"no new request ({len(open_ids)} open, {len(cursor.in_flight)} batch(es) running)"
            ),
        )
    cursor.sequence += 1
    # Unique even if the cursor is reset: Dagster drops a run whose run_key this sensor already used.
    batch = f"requests-{cursor.sequence}-{time.time_ns()}"
    cursor.in_flight[batch] = launch
    # The run records the policy it reads when it starts (orchestration/resources.py).
    run_tags = {
        **tags.trigger_tags("sensor"),
        BATCH_TAG: batch,
        IDS_TAG: ",".join(map(str, launch))[:200],
    }
    run = dg.RunRequest(
        run_key=batch,
        tags=run_tags,
        run_config=dg.RunConfig(ops={"handled_data_requests": RequestBatch(request_ids=launch)}),
    )
    return dg.SensorResult(run_requests=[run], cursor=cursor.dumps())
