"""Differential privacy for the sales tables: the budget and the contribution bounds.

Used when `analytics.mechanism` is `differential_privacy` (docs/sales.md). A customer's units
in one 28-day period are clipped in SQL to `max_units_per_customer_per_period` (at most
`max_units_per_customer_per_cell` in any one sku), so one person moves the period's vector of
counts by at most that much (L1); Laplace noise of scale bound / ε then gives ε-DP per release.
The defaults and why: docs/sales.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from lifecycle.policy.base import Strict

MECHANISMS = ("k_threshold", "differential_privacy")
Mechanism = Literal["k_threshold", "differential_privacy"]


class DifferentialPrivacy(Strict):
    """ε per release and per 28-day period, and how much one customer may contribute to a period."""

    epsilon_per_release: float = 1.0
    epsilon_budget_per_period: float = 2.0  # one re-release after late data, then no more
    max_units_per_customer_per_cell: int = 3
    max_units_per_customer_per_period: int = 6

    @model_validator(mode="after")
    def _consistent(self) -> DifferentialPrivacy:
        if not 0 < self.epsilon_per_release <= self.epsilon_budget_per_period:
            raise ValueError(
                "epsilon_per_release must be above 0 and at most epsilon_budget_per_period"
            )
        if not 1 <= self.max_units_per_customer_per_cell <= self.max_units_per_customer_per_period:
            raise ValueError(
                "max_units_per_customer_per_cell must be 1 or more and at most "
                "max_units_per_customer_per_period"
            )
        return self
