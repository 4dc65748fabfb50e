"""The production dagster.yaml in docs/deploy/ is real config: Dagster loads it, with its secrets
from the environment, against a real PostgreSQL run storage, and it says what docs/deployment.md
says (queue, pool of one, run monitoring, no telemetry)."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from assets.retention import erased_purged_storage
from lifecycle.settings import PROJECT_DIR
from orchestration import names

PRODUCTION = PROJECT_DIR / "docs" / "deploy" / "dagster.yaml"


@pytest.fixture
def production_instance(dagster_settings, tmp_path, monkeypatch):
    """The checked-in file, unchanged, in a DAGSTER_HOME of its own; only the environment is set."""
    home = tmp_path / "production_home"
    home.mkdir()
    shutil.copy(PRODUCTION, home / "dagster.yaml")
    url = sa.make_url(dagster_settings.dagster_storage_url)
    if not url.host:
        # The embedded server listens on a unix socket only, which a host name cannot say: its
        # folder goes in as a connection parameter, the rest of the file stays as checked in.
        config = yaml.safe_load(PRODUCTION.read_text())
        config["storage"]["postgres"]["postgres_db"]["params"] = {"host": url.query["host"]}
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    for name, value in {
        "DAGSTER_PG_HOST": url.host or "",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_DB": url.database,
        "DAGSTER_PG_USER": url.username,
        "DAGSTER_PG_PASSWORD": url.password or "",
    }.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def test_production_dagster_yaml_holds_no_secret():
    text = PRODUCTION.read_text()
    config = yaml.safe_load(text)
    assert config["storage"]["postgres"]["postgres_db"]["password"] == {
        "env": "DAGSTER_PG_PASSWORD"
    }
    assert "postgres_url" not in text and "password:" in text


def test_production_dagster_yaml_loads_with_queue_pool_and_monitoring(production_instance):
    instance = production_instance
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert isinstance(instance.run_launcher, dg.DefaultRunLauncher)
    pools = instance.get_concurrency_config().pool_config
    assert pools.default_pool_limit == 1 and pools.pool_granularity.value == "op"
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 300
    assert not instance.telemetry_enabled
    # The storage really is the database the environment names: a run written is read back.
    run = instance.create_run_for_job(dg.GraphDefinition(name="probe").to_job())
    assert instance.get_run_by_id(run.run_id).job_name == "probe"
    # The rewriting step's pool has no limit of its own: it gets its one slot from default_limit.
    assert erased_purged_storage.op.pool == names.SHOP_REWRITE_POOL
    assert instance.event_log_storage.initialize_concurrency_limit_to_default(
        names.SHOP_REWRITE_POOL
    )
    assert instance.event_log_storage.get_concurrency_info(names.SHOP_REWRITE_POOL).slot_count == 1
