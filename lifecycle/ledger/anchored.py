"""The text form in which a night records a ledger mark (a chain head, a seal) in the run history."""

from __future__ import annotations

from dataclasses import astuple
from typing import Self


class AnchoredText:
    """A frozen dataclass of (chain, number, hex hash), written as `chain:number:hash`: the form
    the Dagster metadata keeps, so anchors stay readable and need no schema of their own."""

    def as_text(self) -> str:
        chain, number, digest = astuple(self)
        return f"{chain}:{number}:{digest}"

    @classmethod
    def from_text(cls, text: str) -> Self:
        chain, number, digest = text.split(":")
        return cls(chain, int(number), digest)
