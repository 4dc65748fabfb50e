"""The requests table the website writes to, and the words its rows use.

Its name is fixed by the website's contact channel, not mapped by the policy. A request's status
is one of received, in_progress, done, partly_done or rejected (migration 0005_data_requests.py).
"""

from __future__ import annotations

from lifecycle.tables import REQUESTS_TABLE

__all__ = ["KINDS", "OPEN", "REQUESTS_TABLE", "UNANSWERED", "kind_label"]
KINDS = ("access", "correct", "erase")
# Not answered yet: new, or claimed by a run that may have failed.
UNANSWERED = ("received", "in_progress")
# Not completed: unanswered, or an erasure answered in part that waits on delivery or a case
# (the table's partial index data_requests_open_idx covers exactly these).
OPEN = (*UNANSWERED, "partly_done")


def kind_label(kind: str) -> str:
    """The kind as counted and logged: one of KINDS, or 'unknown' (whatever the website sent is not echoed)."""
    return kind if kind in KINDS else "unknown"
