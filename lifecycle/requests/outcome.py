"""How one request was answered: what is written back to its row, and the counts a run adds up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Outcome:
    """How one request was answered: its new status and result (ids and codes only)."""

    status: str
    result: dict[str, Any]
    cleared: int = 0
    pending: int = 0
    export_bytes: int = 0
