"""Bad input to the `lifecycle` command ends in a line naming the file, field or database and the
fix, never in a traceback."""

from __future__ import annotations

import sqlalchemy as sa

from tests.test_cli import lifecycle

DOWN = sa.make_url("postgresql://postgres:s3cret-pw@127.0.0.1:1/shop")  # nothing listens on port 1


def error_lines(result) -> list[str]:
    """stderr without the warnings Python and Dagster print on import."""
    return [
        line
        for line in result.stderr.splitlines()
        if line.strip() and "Warning" not in line and not line.startswith("  return fn(")
    ]


def test_a_policy_that_is_not_utf8_is_one_error_naming_the_line(database_url, tmp_path):
    bad = tmp_path / "policy.yaml"
    bad.write_bytes(b'version: "1"\n# r\xe9sum\xe9 of the rules\n')
    result = lifecycle("policy", "check", "--file", str(bad), url=database_url, tmp_path=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{bad}: line 2: not UTF-8 text" in result.stderr


def test_a_folder_as_the_policy_is_one_error_naming_it(database_url, tmp_path):
    result = lifecycle(
        "policy", "check", url=database_url, tmp_path=tmp_path, LIFECYCLE_POLICY=str(tmp_path)
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{tmp_path}: is a folder, not a file" in result.stderr


def test_a_window_of_a_million_days_is_refused_by_the_check_and_the_nightly(
    engine, database_url, tmp_path
):
    bad = tmp_path / "policy.yaml"
    bad.write_text('version: "1"\nretention:\n  after_sales_window_days: 1000000\n')
    check = lifecycle("policy", "check", "--file", str(bad), url=database_url, tmp_path=tmp_path)
    nightly = lifecycle("nightly", url=database_url, tmp_path=tmp_path, LIFECYCLE_POLICY=str(bad))
    assert check.returncode == 1 and nightly.returncode == 1
    assert "retention.after_sales_window_days: Input should be less than or equal to 3650" in (
        check.stderr
    )
    for result in (check, nightly):
        assert (
            "Traceback" not in result.stderr
            and "OverflowError" not in result.stdout + result.stderr
        )


def test_a_database_that_is_down_is_one_line_naming_it_without_its_password(tmp_path):
    for verb in (["due"], ["policy", "check"], ["nightly"], ["requests", "open"]):
        result = lifecycle(*verb, url=DOWN, tmp_path=tmp_path)
        assert result.returncode == 2, (verb, result.stderr[-500:])
        [line] = error_lines(result)
        assert line.startswith(
            "Error: cannot use postgresql+psycopg://postgres:***@127.0.0.1:1/shop"
        ), line
        assert "set LIFECYCLE_DATABASE_URL to a running server" in line
        assert "s3cret-pw" not in result.stdout + result.stderr
