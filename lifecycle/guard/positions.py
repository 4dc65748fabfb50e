"""Where an incremental guard scan stopped, per source, so the next night reads only what came
after: for the run history a Dagster run and its last event read; for the zone scans an analytics
relation and its signature when it last passed clean (lifecycle.guard.changes).

Positions are saved only after a clean scan: a leak found stays found, night after night, until
what holds it is removed (for the run history: the run is deleted from Dagster). Per source,
because a run-sharded event log (SQLite) numbers each run's events on its own.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

RUN_HISTORY = "run_history"


def last_scanned_at(engine: Engine, scan: str) -> datetime | None:
    """When the scan last passed clean, or None before its first clean scan."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT max(scanned_at) FROM lifecycle.guard_positions WHERE scan = :s"),
            {"s": scan},
        ).scalar()


def positions(engine: Engine, scan: str, sources: list[str]) -> dict[str, int]:
    """The last clean position of each of `sources` the scan has seen (others: absent)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT source, position FROM lifecycle.guard_positions "
                "WHERE scan = :s AND source = ANY(:sources)"
            ),
            {"s": scan, "sources": sources},
        )
        return dict(rows.all())


def scanned_at(engine: Engine, scan: str, source: str) -> datetime | None:
    """When the scan last recorded `source`, or None."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT scanned_at FROM lifecycle.guard_positions WHERE scan = :s AND source = :src"
            ),
            {"s": scan, "src": source},
        ).scalar()


def save(
    engine: Engine,
    scan: str,
    reached: dict[str, int],
    scanned_at: datetime,
    forward_only: bool = True,
) -> None:
    """Records a clean scan: each source up to its position (never moving one back, unless
    `forward_only` is off: a signature is not an order)."""
    if not reached:
        return
    position = (
        "greatest(guard_positions.position, excluded.position)"
        if forward_only
        else ("excluded.position")
    )
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"""
                INSERT INTO lifecycle.guard_positions (scan, source, position, scanned_at)
                VALUES (:s, :source, :p, :t)
                ON CONFLICT (scan, source) DO UPDATE
                SET position = {position}, scanned_at = excluded.scanned_at
            """),
            [{"s": scan, "source": k, "p": v, "t": scanned_at} for k, v in reached.items()],
        )


def forget(engine: Engine, scan: str, sources: list[str]) -> None:
    """Drops the positions of `sources`: the scan reads them whole next time."""
    if not sources:
        return
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "DELETE FROM lifecycle.guard_positions WHERE scan = :s AND source = ANY(:sources)"
            ),
            {"s": scan, "sources": sources},
        )
