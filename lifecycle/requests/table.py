"""The requests table the website writes to, and the words its rows use.

Its name is fixed by the website's contact channel, not mapped by the policy. A request's status
is one of received, in_progress, done, partly_done, rejected or failed (migrations 0005, 0060).
"""

from __future__ import annotations

from lifecycle.tables import REQUESTS_TABLE

__all__ = ["AWAITING_ANSWER", "KINDS", "OPEN", "REQUESTS_TABLE", "UNANSWERED", "kind_label"]
KINDS = ("access", "correct", "erase")
# Not answered yet: new, or claimed by a run that may have failed.
UNANSWERED = ("received", "in_progress")
# Not completed: unanswered, an erasure answered in part that waits on delivery or a case, or a
# request the database refused every time (`failed`: waits for a person, and goes overdue like
# the others). The table's partial index data_requests_open_idx covers exactly these.
OPEN = (*UNANSWERED, "partly_done", "failed")
# The customer has no answer yet: these go overdue after requests.response_deadline_days.
AWAITING_ANSWER = (*UNANSWERED, "failed")


def kind_label(kind: str) -> str:
    """The kind as counted and logged: one of KINDS, or 'unknown' (whatever the website sent is not echoed)."""
    return kind if kind in KINDS else "unknown"
