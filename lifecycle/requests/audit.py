"""The audit trail of a request: one lifecycle.request_actions row per action, never a value."""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_AUDIT = sa.text("""
    INSERT INTO lifecycle.request_actions
        (request_id, run_id, action, order_id, columns, outcome, reason, detail)
    VALUES (:request_id, :run_id, :action, :order_id, CAST(:columns AS text[]), :outcome, :reason,
            CAST(:detail AS jsonb))
""")


class Audit:
    """Rows of lifecycle.request_actions for one request: ids, column names and codes only."""

    def __init__(self, conn: Connection, request_id: int, run_id: str):
        self.conn, self.request_id, self.run_id = conn, request_id, run_id

    def add(
        self,
        action: str,
        outcome: str,
        order_id: int | None = None,
        columns: list[str] = (),
        reason: str | None = None,
        detail: dict | None = None,
    ) -> None:
        """Records one action, in the caller's transaction."""
        self.many(
            action,
            outcome,
            [{"order_id": order_id, "columns": list(columns), "reason": reason, "detail": detail}],
        )

    def many(self, action: str, outcome: str, rows: list[dict]) -> None:
        """Records one action per row (order_id, columns, reason, detail), in one statement."""
        if rows:
            self.conn.execute(
                _AUDIT,
                [
                    {
                        "request_id": self.request_id,
                        "run_id": self.run_id,
                        "action": action,
                        "outcome": outcome,
                        "order_id": r.get("order_id"),
                        "columns": list(r.get("columns", [])),
                        "reason": r.get("reason"),
                        "detail": json.dumps(r["detail"]) if r.get("detail") is not None else None,
                    }
                    for r in rows
                ],
            )
