"""Open requests by age against the response deadline (`requests.response_deadline_days`).

A request not answered within the deadline is overdue. A `partly_done` erasure has been answered
(with its reasons): while it waits only on delivery or a case, which end by themselves, it is
listed but not overdue; an order it waits on for anything else (a row that cannot be judged, an
order moved to another customer) waits on a person, and past the deadline the request is overdue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.orders import SAMPLE_IDS, sql_list
from lifecycle.policy import Policy
from lifecycle.requests.erasure import ENDS_BY_ITSELF
from lifecycle.requests.table import AWAITING_ANSWER, OPEN, REQUESTS_TABLE, kind_label
from lifecycle.shown_tables import ShownTable


@dataclass
class OpenRequests:
    """Requests not yet completed, oldest first, against the response deadline."""

    as_of: datetime
    deadline_days: int
    rows: list[tuple[int, str, str, datetime]]
    total: int
    overdue_ids: list[int]

    @property
    def overdue(self) -> int:
        """How many requests are past the deadline unanswered."""
        return len(self.overdue_ids)

    def table(self, limit: int = 50) -> ShownTable:
        """Open requests by age, oldest first: what the UI shows (the CLI prints it as text)."""
        deadline = timedelta(days=self.deadline_days)
        overdue = set(self.overdue_ids)
        rows: list[list[object]] = []
        for request_id, kind, status, received_at in self.rows[:limit]:
            age = (self.as_of - received_at).total_seconds() / 86400
            late = request_id in overdue
            due = (
                "answered, waiting"
                if status == "partly_done"
                else (received_at + deadline).strftime("%Y-%m-%d %H:%M")
            )
            rows.append(
                [
                    str(request_id),
                    kind_label(kind),
                    status,
                    received_at.strftime("%Y-%m-%d %H:%M"),
                    f"{age:.1f}",
                    due,
                    "yes" if late else "no",
                ]
            )
        if self.total > limit:
            rows.append(["…", "", "", "", "", "", f"{self.total - limit} more"])
        if not self.rows:
            rows.append(["–", "", "", "", "", "", "no open request"])
        columns = ["request", "kind", "status", "received (UTC)", "age (days)", "answer due"]
        return ShownTable.of([*columns, "overdue"], rows, {0, 4})

    def metadata(self) -> dict[str, object]:
        """Counts, overdue ids and the table by age for the asset's materialization."""
        by_status: dict[str, int] = {}
        for _, _, status, _ in self.rows:
            by_status[status] = by_status.get(status, 0) + 1
        oldest = (self.as_of - self.rows[0][3]).total_seconds() / 86400 if self.rows else 0.0
        return {
            "open": self.total,
            "open_by_status": by_status,
            "overdue": self.overdue,
            "overdue_request_ids": self.overdue_ids[:SAMPLE_IDS],
            "oldest_open_days": round(oldest, 2),
            "response_deadline_days": self.deadline_days,
            "open_by_age": self.table(),
        }


_OPEN_ROWS = sa.text(f"""
    SELECT request_id, kind, status, received_at FROM {REQUESTS_TABLE}
    WHERE completed_at IS NULL AND status IN ({sql_list(OPEN)})
    ORDER BY received_at, request_id
    LIMIT :limit
""")
_OPEN_COUNTS = sa.text(f"""
    SELECT count(*),
           coalesce(array_agg(request_id ORDER BY received_at, request_id)
                    FILTER (WHERE received_at <= :deadline_cutoff AND (
                        status IN ({sql_list(AWAITING_ANSWER)})
                        OR status = 'partly_done' AND EXISTS (
                            SELECT 1 FROM lifecycle.pending_erasures p
                            WHERE p.request_id = r.request_id AND p.erased_at IS NULL
                              AND p.waiting_for NOT IN ({sql_list(ENDS_BY_ITSELF)})))),
                    '{{}}')
    FROM {REQUESTS_TABLE} r
    WHERE completed_at IS NULL AND status IN ({sql_list(OPEN)})
""")


def open_requests(
    engine: Engine, policy: Policy, as_of: datetime | None = None, limit: int = 500
) -> OpenRequests:
    """Open requests by age; overdue are those not answered within `response_deadline_days`."""
    as_of = as_of or datetime.now(UTC)
    days = policy.requests.response_deadline_days
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(_OPEN_ROWS, {"limit": limit})]
        total, overdue = conn.execute(
            _OPEN_COUNTS, {"deadline_cutoff": as_of - timedelta(days=days)}
        ).one()
    return OpenRequests(
        as_of=as_of, deadline_days=days, rows=rows, total=total, overdue_ids=list(overdue)
    )
