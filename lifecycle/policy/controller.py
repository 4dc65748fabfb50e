"""Who is responsible for the processing and why it is lawful: the record of processing's first page."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lifecycle.policy.base import Strict

# GDPR Art. 6(1)(a)-(f): the only lawful bases there are.
LegalBasis = Literal[
    "consent",
    "contract",
    "legal_obligation",
    "vital_interests",
    "public_task",
    "legitimate_interests",
]


class Purpose(Strict):
    """One purpose of processing, its legal basis, and what it is in the statement's words."""

    name: str = Field(min_length=1)
    legal_basis: LegalBasis
    description: str = Field(min_length=1)


class Controller(Strict):
    """The controller named in the record of processing (`lifecycle record`, docs/compliance.md)."""

    name: str = Field(min_length=1)
    contact: str = Field(min_length=1)
    purposes: tuple[Purpose, ...] = Field(min_length=1)
