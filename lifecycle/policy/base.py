"""What every policy section shares: unknown keys are refused, a loaded policy never changes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A policy section: unknown keys are errors, and values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)
