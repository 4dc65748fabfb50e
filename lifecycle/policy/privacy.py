"""Differential privacy for the sales tables: the budget and the contribution bounds.

Used when `analytics.mechanism` is `differential_privacy` (docs/sales.md). A customer's units
in one ISO week are clipped in SQL to `max_units_per_customer_per_week` (at most
`max_units_per_customer_per_cell` in any one sku), so one person moves the week's vector of
counts by at most that much (L1); Laplace noise of scale bound / ε then gives ε-DP per release.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from lifecycle.policy.base import Strict

MECHANISMS = ("k_threshold", "differential_privacy")
Mechanism = Literal["k_threshold", "differential_privacy"]


class DifferentialPrivacy(Strict):
    """ε per release and per week, and how much one customer may contribute to a week."""

    epsilon_per_release: float = 1.0
    epsilon_budget_per_week: float = 2.0  # one re-release after late data, then no more
    max_units_per_customer_per_cell: int = 2
    max_units_per_customer_per_week: int = 4

    @model_validator(mode="after")
    def _consistent(self) -> DifferentialPrivacy:
        if not 0 < self.epsilon_per_release <= self.epsilon_budget_per_week:
            raise ValueError(
                "epsilon_per_release must be above 0 and at most epsilon_budget_per_week"
            )
        if not 1 <= self.max_units_per_customer_per_cell <= self.max_units_per_customer_per_week:
            raise ValueError(
                "max_units_per_customer_per_cell must be 1 or more and at most "
                "max_units_per_customer_per_week"
            )
        return self
