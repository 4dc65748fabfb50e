"""The ledger's anchor is recorded in the run history each night, and the nightly check uses it."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa
from click.testing import CliRunner

from assets.ledger import ledger_assets, ledger_checks
from assets.retention import retention_assets, retention_checks
from cli import main
from lifecycle.ledger.chain import heads, shop_identity
from lifecycle.report.render import render
from orchestration import tags
from orchestration.anchors import recorded_anchors, recorded_seals
from orchestration.reporting import report_from_history
from orchestration.resources import ShopDatabase
from sensors.schedules import nightly_lifecycle
from tests.db.test_erasure import quiet_horizon
from tests.db.test_report_cli import env_for
from tests.shop import PERSONAL, add_delivered, leaked

DAY = timedelta(days=1)


def night(settings, instance):
    """The nightly job over the retention and ledger assets, recorded as `lifecycle nightly` would."""
    defs = dg.Definitions(
        assets=[*retention_assets, *ledger_assets],
        asset_checks=[*retention_checks, *ledger_checks],
        jobs=[nightly_lifecycle],
        resources={
            "shop": ShopDatabase(url=settings.database_url, policy_path=str(settings.policy_path))
        },
    )
    return defs.resolve_job_def("nightly_lifecycle").execute_in_process(
        instance=instance, tags=tags.trigger_tags("cli"), raise_on_error=False
    )


def ledger_check(result) -> dg.AssetCheckEvaluation:
    [evaluation] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "ledger_chain_intact"
    ]
    return evaluation


def test_each_night_anchors_the_heads_and_checks_the_chain(
    engine, dagster_settings, dagster_instance
):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - 40 * DAY)
        add_delivered(conn, 2, datetime.now(UTC) - 50 * DAY)
    result = night(dagster_settings, dagster_instance)
    assert result.success and ledger_check(result).passed
    assert recorded_anchors(dagster_instance, shop_identity(engine)) == heads(engine)
    assert recorded_anchors(dagster_instance, "another shop") == []
    chained = {h.chain for h in heads(engine)}
    if "erasure_runs" not in chained:  # the rewrite waited: only for another database's writer
        with engine.connect() as conn:
            waits = conn.execute(sa.text("SELECT waiting_for FROM lifecycle.erasure_waits")).all()
        assert waits and all("writing in database" in w for (held,) in waits for w in held)
    assert chained <= {"purge_ledger", "erasure_runs"} and "purge_ledger" in chained


def test_a_tail_cut_after_the_anchor_fails_the_next_nights_check(
    engine, dagster_settings, dagster_instance
):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - 40 * DAY)
    assert night(dagster_settings, dagster_instance).success
    with engine.begin() as conn:  # someone removes the night's ledger and its link
        conn.execute(sa.text("DELETE FROM lifecycle.purge_ledger"))
        conn.execute(sa.text("DELETE FROM lifecycle.ledger_links WHERE chain = 'purge_ledger'"))
    result = night(dagster_settings, dagster_instance)
    check = ledger_check(result)
    assert result.success  # not blocking: the purge still ran
    assert not check.passed
    assert "purge_ledger: link 1" in check.metadata["first_break"].value
    assert "truncated" in check.description


def test_ledger_verify_exits_1_naming_the_first_broken_link(
    engine, dagster_settings, dagster_instance
):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - 40 * DAY)
    quiet_horizon(engine)  # the erasure's row is one of the two verified
    run = night(dagster_settings, dagster_instance)
    runner = CliRunner()
    ok = runner.invoke(main, ["ledger", "verify"], env=env_for(dagster_settings))
    assert ok.exit_code == 0, ok.output
    assert "ledger intact: 2 rows in 2 links" in ok.output and "anchors match" in ok.output
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE lifecycle.purge_ledger SET reason = :v"),
            {"v": PERSONAL["receiver_name"]},
        )
    broken = runner.invoke(
        main, ["ledger", "verify", "--since", "7d"], env=env_for(dagster_settings)
    )
    assert broken.exit_code == 1
    assert (
        f"purge_ledger: link 1, row id 1, run {run.run_id}: a row in its id range was altered"
        in broken.output
    )
    assert not leaked(broken.output)


def test_the_report_shows_the_verified_range_at_a_glance(
    engine, policy, dagster_settings, dagster_instance
):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - 40 * DAY)
    now = datetime.now(UTC)
    before = report_from_history(engine, policy, dagster_instance, now - 30 * DAY, now)
    assert (
        False,
        "The audit trail's hash chains were not verified in the period (no "
        "ledger_chain_intact check ran); run `lifecycle ledger verify`.",
    ) in before.verdict()
    quiet_horizon(engine)  # the erasure's row is then usually the second one verified
    night(dagster_settings, dagster_instance)
    # On a shared server another session's transaction can still hold the rewrite back: then the
    # erasure_runs chain has no row yet, and one row (the purge's) is verified against one anchor.
    chains = len(heads(engine))
    assert chains in (1, 2)
    now = datetime.now(UTC)
    report = report_from_history(engine, policy, dagster_instance, now - 30 * DAY, now)
    [(ok, text)] = [(ok, t) for ok, t in report.verdict() if t.startswith("The audit trail")]
    assert ok and "verified intact" in text and f"{chains} rows against {chains} anchors" in text
    assert "purge_ledger links 1..1, 1 rows, full (no seal)" in text  # how it was verified
    assert text in render(report, "md")


def test_the_next_night_verifies_sealed_and_a_forged_seal_fails_its_check(
    engine, dagster_settings, dagster_instance
):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - 40 * DAY)
    first = ledger_check(night(dagster_settings, dagster_instance))
    assert first.passed and first.metadata["modes"].value["purge_ledger"] == "full (no seal)"
    recorded = recorded_seals(dagster_instance, shop_identity(engine))
    assert "purge_ledger" in {s.chain for s in recorded}
    second = ledger_check(night(dagster_settings, dagster_instance))
    assert second.passed and second.metadata["modes"].value["purge_ledger"] == "sealed"
    runner = CliRunner()
    sealed = runner.invoke(main, ["ledger", "verify"], env=env_for(dagster_settings))
    assert sealed.exit_code == 0 and "sealed" in sealed.output, sealed.output
    full = runner.invoke(main, ["ledger", "verify", "--full"], env=env_for(dagster_settings))
    assert full.exit_code == 0 and " sealed" not in full.output, full.output
    with engine.begin() as conn:  # rows and seals rewritten by someone who can write lifecycle.*
        conn.execute(sa.text("UPDATE lifecycle.purge_ledger SET reason = 'x'"))
        conn.execute(sa.text("UPDATE lifecycle.ledger_seals SET horizon = horizon + 1000"))
    third = ledger_check(night(dagster_settings, dagster_instance))
    assert not third.passed and "forged" in third.description
    broken = runner.invoke(main, ["ledger", "verify"], env=env_for(dagster_settings))
    assert broken.exit_code == 1 and "forged" in broken.output
