"""How customers' access, correction and erasure requests are answered."""

from __future__ import annotations

from pydantic import Field, field_validator

from lifecycle.policy.base import Strict
from lifecycle.policy.identifiers import column_names


class DataRequests(Strict):
    """How customers' access, correction and erasure requests are answered (docs/requests.md)."""

    response_deadline_days: int = Field(15, gt=0, le=365)
    correctable_columns: tuple[str, ...] = (
        "receiver_name",
        "receiver_phone",
        "receiver_email",
        "receiver_address",
        "receiver_postcode",
    )
    export_retention_days: int = Field(30, gt=0, le=3650)

    @field_validator("correctable_columns")
    @classmethod
    def _identifiers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return column_names(value)
