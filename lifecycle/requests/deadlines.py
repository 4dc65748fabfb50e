"""Open requests by age against the response deadline (`requests.response_deadline_days`).

A request not answered within the deadline is overdue. A `partly_done` erasure has been answered
(with its reasons) and waits on delivery or a case: it is listed, but not overdue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.orders import SAMPLE_IDS, sql_list
from lifecycle.policy import Policy
from lifecycle.requests.table import AWAITING_ANSWER, OPEN, REQUESTS_TABLE, kind_label


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

    def markdown(self, limit: int = 50) -> str:
        """Open requests by age, oldest first: what the UI shows."""
        lines = [
            "| request | kind | status | received (UTC) | age (days) | answer due | overdue |",
            "|---:|---|---|---|---:|---|---|",
        ]
        deadline = timedelta(days=self.deadline_days)
        for request_id, kind, status, received_at in self.rows[:limit]:
            age = (self.as_of - received_at).total_seconds() / 86400
            late = status != "partly_done" and received_at + deadline <= self.as_of
            due = (
                "answered, waiting"
                if status == "partly_done"
                else (received_at + deadline).strftime("%Y-%m-%d %H:%M")
            )
            lines.append(
                f"| {request_id} | {kind_label(kind)} | {status} | "
                f"{received_at.strftime('%Y-%m-%d %H:%M')} | {age:.1f} | {due} | "
                f"{'**yes**' if late else 'no'} |"
            )
        if self.total > limit:
            lines.append(f"| … | | | | | | {self.total - limit} more |")
        if not self.rows:
            lines.append("| – | | | | | | no open request |")
        return "\n".join(lines)

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
            "open_by_age": self.markdown(),
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
                    FILTER (WHERE status IN ({sql_list(AWAITING_ANSWER)}) AND received_at <= :deadline_cutoff),
                    '{{}}')
    FROM {REQUESTS_TABLE}
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
