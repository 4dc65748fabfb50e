"""`lifecycle report` and `lifecycle instance` from the command line, on a test shop and history."""

import json
from datetime import UTC, datetime, timedelta

import yaml
from click.testing import CliRunner

from cli import main
from tests.nightly import run_nightly
from tests.shop import add_delivered


def env_for(settings) -> dict[str, str]:
    return {
        "LIFECYCLE_DATABASE_URL": settings.database_url,
        "LIFECYCLE_DAGSTER_STORAGE_URL": settings.dagster_storage_url,
        "DAGSTER_HOME": str(settings.dagster_home),
    }


def test_report_writes_html_unless_the_file_says_md_or_json(
    engine, dagster_settings, dagster_instance, tmp_path
):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - 40 * timedelta(days=1))
    run = run_nightly(dagster_settings, dagster_instance)
    runner = CliRunner()
    for name in ("report.html", "report.md", "report.json"):
        result = runner.invoke(
            main,
            ["report", "--since", "7d", "--out", str(tmp_path / name)],
            env=env_for(dagster_settings),
        )
        assert result.exit_code == 0, result.output
        assert (
            f"wrote {tmp_path / name}" in result.output
            and "1 nightly run over 8 days" in result.output
        )
    assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")
    assert (tmp_path / "report.md").read_text().startswith("# Privacy compliance report")
    data = json.loads((tmp_path / "report.json").read_text())
    [night] = [n for n in data["nights"] if n["run_id"]]
    assert (night["run_id"], night["purged"], night["result"]) == (run.run_id, 1, "succeeded")


def test_report_refuses_a_period_it_cannot_read(dagster_settings, tmp_path):
    result = CliRunner().invoke(
        main,
        ["report", "--since", "last month", "--out", str(tmp_path / "r.html")],
        env=env_for(dagster_settings),
    )
    assert result.exit_code == 2
    assert "'last month' is neither a duration (30d, 12h, 6w) nor a date" in result.output
    assert not (tmp_path / "r.html").exists()


def test_instance_writes_dagster_yaml_and_prints_dagster_home(dagster_settings):
    result = CliRunner().invoke(main, ["instance"], env=env_for(dagster_settings))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(dagster_settings.dagster_home)
    config = yaml.safe_load((dagster_settings.dagster_home / "dagster.yaml").read_text())
    assert config["storage"]["postgres"]["postgres_url"].startswith("postgresql+psycopg2://")
