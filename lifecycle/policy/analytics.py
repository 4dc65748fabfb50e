"""How sales are dated and how small cells are protected in the published sales volume."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import field_validator

from lifecycle.policy.base import Strict
from lifecycle.policy.privacy import DifferentialPrivacy, Mechanism


class Analytics(Strict):
    """How sales are dated and how small cells are protected in the published sales volume."""

    timezone: str = "UTC"
    min_customers_per_cell: int = 5
    mechanism: Mechanism = "k_threshold"  # or differential_privacy (docs/sales.md)
    differential_privacy: DifferentialPrivacy = DifferentialPrivacy()

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                "not an IANA time zone; write one such as 'Asia/Shanghai', 'Europe/Berlin' or 'UTC'"
            ) from None
        return value

    @field_validator("min_customers_per_cell")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be a whole number of customers, 1 or more")
        return value
