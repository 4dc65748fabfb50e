"""The record of processing says what the policy says, with the period's evidence, and nothing personal."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from cli import main
from lifecycle.record.build import RecordError, build_record
from lifecycle.record.render import render
from orchestration.reporting import report_from_history
from tests.db.test_report_cli import env_for
from tests.nightly import run_nightly
from tests.shop import PERSONAL, add_delivered, leaked

DAY = timedelta(days=1)


def record_of(engine, policy, instance):
    now = datetime.now(UTC)
    report = report_from_history(engine, policy, instance, now - 30 * DAY, now)
    return build_record(policy, report)


def test_every_fact_comes_from_the_policy_and_the_history(
    engine, policy, dagster_settings, dagster_instance
):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - 40 * DAY)
        add_delivered(conn, 2, datetime.now(UTC) - 45 * DAY)
    run_nightly(dagster_settings, dagster_instance)
    record = record_of(engine, policy, dagster_instance)
    assert [c.topic for c in record.purposes] == [p.name for p in policy.controller.purposes]
    assert {c.topic: c.claim for c in record.categories}["shop.orders"] == ", ".join(
        policy.raw.orders.personal_columns
    )
    assert [c.topic for c in record.recipients] == [
        f"carrier {name}" for name in sorted(policy.logistics.carriers)
    ]
    assert all(", ".join(policy.logistics.fields) in c.claim for c in record.recipients)
    delivered = record.retention[0]
    assert f"{policy.retention.after_sales_window_days} days after delivery" in delivered.claim
    assert delivered.evidence.startswith(
        "2 orders cleared in the period; 1 successful nightly run."
    )
    for fmt in ("html", "md", "json"):
        text = render(record, fmt)
        assert policy.controller.name in text and "legal basis: contract" in text
        assert not leaked(text)
    assert json.loads(render(record, "json"))["controller"] == policy.controller.name


def test_a_policy_without_a_controller_cannot_give_a_record(engine, policy, dagster_instance):
    bare = policy.model_copy(update={"controller": None})
    with pytest.raises(RecordError, match="controller: missing; add the section"):
        record_of(engine, bare, dagster_instance)


def test_record_command_writes_the_file(engine, dagster_settings, dagster_instance, tmp_path):
    result = CliRunner().invoke(
        main, ["record", "--out", str(tmp_path / "record.md")], env=env_for(dagster_settings)
    )
    assert result.exit_code == 0, result.output
    text = (tmp_path / "record.md").read_text()
    assert text.startswith("# Record of processing activities")
    assert "## Recipients" in text and "Acting as lifecycle_analyst" in text
    assert not leaked(text, [PERSONAL["receiver_name"]])
