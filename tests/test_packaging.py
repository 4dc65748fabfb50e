"""A non-editable install works away from the source tree: the templates and migrations ship, and
a missing policy file is one clear line naming the setting that fixes it."""

import os
import subprocess
import sys

import pytest

from lifecycle.settings import PROJECT_DIR

CLI = "import sys; from cli import main; sys.exit(main())"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The project built as a wheel and installed (without its dependencies) into a folder of its own."""
    wheels, target = tmp_path_factory.mktemp("wheels"), tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(wheels),
            str(PROJECT_DIR),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = wheels.glob("lifecycle-*.whl")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    return target


def lifecycle(installed, cwd, *args, **env):
    environment = {**os.environ, "PYTHONPATH": str(installed), **env}
    environment.pop("LIFECYCLE_POLICY", None)
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_installed_package_is_the_one_that_runs(installed, tmp_path):
    code = (
        "import lifecycle, orchestration; print(lifecycle.__file__); print(orchestration.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(installed)},
    )
    assert all(line.startswith(str(installed)) for line in result.stdout.split()), result.stdout


def test_policy_check_elsewhere_names_the_missing_file_and_the_fix(
    installed, tmp_path, database_url
):
    result = lifecycle(
        installed,
        tmp_path,
        "policy",
        "check",
        LIFECYCLE_DATABASE_URL=database_url.render_as_string(hide_password=False),
    )
    assert result.returncode == 1
    assert "policy.yaml" in result.stderr and "LIFECYCLE_POLICY" in result.stderr
    assert "Traceback" not in result.stderr


def test_installed_package_migrates_and_checks_a_policy_from_another_folder(
    installed, tmp_path, database_url
):
    env = {
        "LIFECYCLE_DATABASE_URL": database_url.render_as_string(hide_password=False),
        "LIFECYCLE_POLICY": str(PROJECT_DIR / "policy.yaml"),
    }
    upgrade = lifecycle(installed, tmp_path, "db", "upgrade", **env)
    assert upgrade.returncode == 0, upgrade.stderr[-1500:]
    check = lifecycle(installed, tmp_path, "policy", "check", **env)
    assert check.returncode == 0, check.stderr[-1500:]
    assert "valid" in check.stdout
