"""Dagster's compute logs: what steps printed to stdout and stderr, kept as files under
DAGSTER_HOME. A value a step prints lands here, outside the event log, so the run-history check
reads these files too (as text, never into the database: they are hashed in Python like the
event log)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg

LOG_SUFFIXES = (".out", ".err")
MAX_BYTES = 16 * 2**20  # per file: a step that printed more is read up to this much


def compute_log_files(instance: dg.DagsterInstance, run_id: str) -> list[Path]:
    """The stdout/stderr files Dagster's local compute log manager kept for `run_id`."""
    folder = Path(instance.root_directory) / "storage" / run_id / "compute_logs"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in LOG_SUFFIXES)


def compute_log_texts(
    instance: dg.DagsterInstance, run_ids: list[str]
) -> Iterator[tuple[str, int, str]]:
    """(location, line number, line) for every line the runs' steps printed."""
    for run_id in run_ids:
        for path in compute_log_files(instance, run_id):
            where = f"run {run_id[:8]} / compute log {path.name}"
            with path.open("rb") as file:
                text = file.read(MAX_BYTES).decode("utf-8", errors="replace")
            for number, line in enumerate(text.splitlines()):
                if line.strip():
                    yield where, number, line
