"""One rewrite at a time: the step that rewrites shop tables waits for the `shop_rewrite` pool's
single slot while another run holds it, even in a run the CLI executes in its own process."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from orchestration.names import SHOP_REWRITE_POOL
from tests.nightly import run_nightly
from tests.shop import add_delivered

OTHER_RUN = "another-run-rewriting"


def erasure_steps_of(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    """The metadata of each erasure step the run finished (rewritten, or pending behind a snapshot
    another session of the shared server holds: either way the step ran)."""
    return [
        {key: value.value for key, value in entry.asset_materialization.metadata.items()}
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        if entry.asset_materialization.asset_key == dg.AssetKey("erased_purged_storage")
    ]


def test_a_rewrite_waits_while_another_run_holds_the_shop_rewrite_slot(
    engine, dagster_settings, dagster_instance
):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - timedelta(days=100))
    storage = dagster_instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(SHOP_REWRITE_POOL)
    assert storage.get_concurrency_info(SHOP_REWRITE_POOL).slot_count == 1
    held = storage.claim_concurrency_slot(SHOP_REWRITE_POOL, OTHER_RUN, "erased_purged_storage")
    assert held.is_claimed

    outcome = {}
    runner = threading.Thread(
        target=lambda: outcome.update(run=run_nightly(dagster_settings, dagster_instance))
    )
    runner.start()
    deadline = time.monotonic() + 120
    while not storage.get_concurrency_info(SHOP_REWRITE_POOL).pending_run_ids:
        assert runner.is_alive() and time.monotonic() < deadline, "the rewrite never queued"
        time.sleep(0.2)
    [waiting] = storage.get_concurrency_info(SHOP_REWRITE_POOL).pending_run_ids
    time.sleep(1)
    assert runner.is_alive() and erasure_steps_of(dagster_instance, waiting) == []

    storage.free_concurrency_slots_for_run(OTHER_RUN)
    runner.join(timeout=180)
    assert not runner.is_alive() and outcome["run"].success
    assert outcome["run"].run_id == waiting
    [erased] = erasure_steps_of(dagster_instance, waiting)
    assert erased["ran"] is True or (erased["waiting_for"] and erased["pending_tables"])
    assert storage.get_concurrency_info(SHOP_REWRITE_POOL).claimed_slots == []
