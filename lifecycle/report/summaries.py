"""Nightly runs kept in lifecycle.nightly_summaries, so the report outlives the run history's retention.

A finished nightly run is stored as the plain summary the report reads (lifecycle/runs.py): status,
trigger, policy, counts, check names and verdicts. Nothing else of the run is kept, and nothing in
it is personal.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.runs import RecordedCheck, RunSummary

_STORE = sa.text("""
    INSERT INTO lifecycle.nightly_summaries (run_id, created_at, finished_at, summary)
    VALUES (:run_id, :created_at, :finished_at, CAST(:summary AS jsonb))
    ON CONFLICT (run_id) DO NOTHING
""")
_KEPT = sa.text("SELECT run_id FROM lifecycle.nightly_summaries")
_LOAD = sa.text("""
    SELECT summary FROM lifecycle.nightly_summaries WHERE created_at >= :since ORDER BY created_at
""")
_FIRST = sa.text("SELECT min(created_at) FROM lifecycle.nightly_summaries")


def _encode(run: RunSummary) -> str:
    return json.dumps(
        asdict(run), default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v)
    )


def _decode(data: dict) -> RunSummary:
    data = dict(data)
    for key in ("created_at", "finished_at"):
        data[key] = datetime.fromisoformat(data[key]) if data.get(key) else None
    data["checks"] = [RecordedCheck(**c) for c in data.get("checks", [])]
    data["failed_steps"] = [tuple(s) for s in data.get("failed_steps", [])]
    return RunSummary(**data)


def kept_run_ids(engine: Engine) -> set[str]:
    """Runs whose summary is already kept."""
    with engine.connect() as conn:
        return set(conn.execute(_KEPT).scalars())


def store(engine: Engine, runs: list[RunSummary]) -> int:
    """Keeps these runs' summaries (a run already kept is left as it was); returns how many were new."""
    with engine.begin() as conn:
        return sum(
            conn.execute(
                _STORE,
                {
                    "run_id": run.run_id,
                    "created_at": run.created_at,
                    "finished_at": run.finished_at,
                    "summary": _encode(run),
                },
            ).rowcount
            for run in runs
        )


def load(engine: Engine, since: datetime) -> list[RunSummary]:
    """Kept summaries of the runs created since `since`, oldest first."""
    with engine.connect() as conn:
        return [_decode(row) for row in conn.execute(_LOAD, {"since": since}).scalars()]


def first_created(engine: Engine) -> datetime | None:
    """When the oldest kept run was created."""
    with engine.connect() as conn:
        return conn.execute(_FIRST).scalar()
