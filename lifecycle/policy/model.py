"""The whole policy: one section per concern, with the file it came from and its content hash."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PrivateAttr

from lifecycle.policy.acknowledgements import Acknowledgement
from lifecycle.policy.analytics import Analytics
from lifecycle.policy.base import Strict
from lifecycle.policy.controller import Controller
from lifecycle.policy.guard import Guard
from lifecycle.policy.history import RunHistory
from lifecycle.policy.ledger import Ledger
from lifecycle.policy.logistics import Logistics
from lifecycle.policy.raw import RawZone
from lifecycle.policy.requests import DataRequests
from lifecycle.policy.retention import Retention


class Policy(Strict):
    """A validated policy, with the file it came from and its content hash.

    One section per concern; a new capability adds its section model above and one field here.
    """

    version: str = Field(min_length=1)
    raw: RawZone = Field(default_factory=lambda: RawZone.model_validate({}))
    retention: Retention = Retention()
    analytics: Analytics = Analytics()
    requests: DataRequests = DataRequests()
    logistics: Logistics = Logistics()
    run_history: RunHistory = RunHistory()
    controller: Controller | None = None
    guard: Guard = Guard()
    ledger: Ledger = Ledger()
    # Settings that give a promise away on purpose (acknowledgements.py): zero_window, k_of_one.
    acknowledge: tuple[Acknowledgement, ...] = ()

    _path: Path = PrivateAttr(default=Path("policy.yaml"))
    _sha256: str = PrivateAttr(default="")

    @property
    def path(self) -> Path:
        return self._path

    @property
    def sha256(self) -> str:
        return self._sha256

    @property
    def short_hash(self) -> str:
        return self._sha256[:12]
