"""Loading the definitions (every process start: CLI run, code server, run worker) skips the heavy
libraries only some steps use: Great Expectations (guard checks), OpenDP (a DP release), Faker
(`lifecycle demo`), Jinja2 (the report), pandas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("great_expectations", "opendp", "faker", "jinja2", "pandas")


def test_importing_definitions_loads_no_heavy_library(tmp_path):
    probe = f"import sys, definitions; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={"PATH": "/usr/bin:/bin", "DAGSTER_HOME": str(tmp_path), "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr  # the definitions were imported
    assert result.stdout.strip() == "", f"imported at load time: {result.stdout.strip()}"
