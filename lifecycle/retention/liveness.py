"""Which purge runs are still alive: a run holds a lock while it works, so a `running` row whose
lock is free belongs to a process that died (kill -9, a lost machine) and is marked `killed`.

The lock is a PostgreSQL session-level advisory lock keyed by the run id, held on a connection of
its own from before the run's row is written until after its end is recorded. The server releases
it when that session ends, however the process ended, so no pid or host has to be trusted. A run
that finds another's row `running` tries its lock: taken means nobody holds it, so that run is dead.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

KILLED = "killed"
# First key of the two-key advisory lock: one lock space for purge runs, the second key is the run.
LOCK_SPACE = 0x6C63_7072  # "lcpr"

_HOLD = sa.text("SELECT pg_advisory_lock(:space, hashtext(:run_id))")
_RELEASE = sa.text("SELECT pg_advisory_unlock(:space, hashtext(:run_id))")
_RUNNING = sa.text(
    "SELECT run_id FROM lifecycle.purge_runs WHERE status = 'running' AND run_id <> :run_id"
)
_TRY = sa.text("SELECT pg_try_advisory_xact_lock(:space, hashtext(:run_id))")
_MARK = sa.text("""
    UPDATE lifecycle.purge_runs
    SET status = 'killed',
        summary = coalesce(summary, '{}'::jsonb)
                  || jsonb_build_object('marked_killed_at', now(), 'marked_by_run', CAST(:by AS text))
    WHERE run_id = :run_id AND status = 'running'
""")


class RunLock:
    """The lock a live run holds; `release` when the run's end is recorded."""

    def __init__(self, conn: Connection, run_id: str):
        self._conn, self.run_id = conn, run_id

    def release(self) -> None:
        """Frees the lock and its connection; safe to call twice."""
        if self._conn is None:
            return
        try:
            self._conn.execute(_RELEASE, {"space": LOCK_SPACE, "run_id": self.run_id})
            self._conn.commit()
        finally:
            self._conn.close()
            self._conn = None


def claim_run(engine: Engine, run_id: str) -> tuple[RunLock, list[str]]:
    """Takes `run_id`'s lock, then marks every other `running` run whose lock is free as killed.

    Returns the held lock and the run ids marked. The lock is taken first, so no live run can be
    taken for dead between writing its row and locking it.
    """
    conn = engine.connect()
    try:
        conn.execute(_HOLD, {"space": LOCK_SPACE, "run_id": run_id})
        conn.commit()
    except BaseException:
        conn.close()
        raise
    return RunLock(conn, run_id), mark_killed_runs(engine, run_id)


def mark_killed_runs(engine: Engine, by_run: str) -> list[str]:
    """Marks `killed` every `running` purge run (other than `by_run`) whose process is gone."""
    marked = []
    with engine.connect() as conn:
        with conn.begin():
            running = [row.run_id for row in conn.execute(_RUNNING, {"run_id": by_run})]
        for run_id in running:
            with conn.begin():
                if conn.execute(_TRY, {"space": LOCK_SPACE, "run_id": run_id}).scalar():
                    if conn.execute(_MARK, {"run_id": run_id, "by": by_run}).rowcount:
                        marked.append(run_id)
    return marked
