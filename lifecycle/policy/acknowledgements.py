"""Settings that are legal but give away a promise, so the policy must say it means them.

A window of 0 days clears an order the moment it is delivered, cancelled or abandoned (no
after-sales service on its data), and k = 1 publishes cells that describe a single customer. Both
are sometimes right, never by accident: each needs its word in the top-level `acknowledge` list,
and a word with nothing to acknowledge is refused too, so it cannot outlive the setting it was for.
"""

from __future__ import annotations

from typing import Literal

ZERO_WINDOW = "zero_window"
K_OF_ONE = "k_of_one"
Acknowledgement = Literal["zero_window", "k_of_one"]

# Windows after which an order is cleared; stale_in_service_days only reports, so 0 is harmless.
CLEARING_WINDOWS = ("after_sales_window_days", "cancelled_retention_days", "abandoned_after_days")


def unacknowledged(policy) -> list[tuple[str, str]]:
    """(field, problem) for each such setting without its acknowledgement, and each stray word."""
    given = set(policy.acknowledge)
    problems: list[tuple[str, str]] = []
    zero = [name for name in CLEARING_WINDOWS if getattr(policy.retention, name) == 0]
    for name in zero if ZERO_WINDOW not in given else []:
        problems.append(
            (
                f"retention.{name}",
                "0 days clears personal fields the moment the window opens, leaving no time for "
                f"after-sales service; if that is meant, add `acknowledge: [{ZERO_WINDOW}]` at the "
                "top level, else use 1 or more",
            )
        )
    k_one = policy.analytics.min_customers_per_cell == 1
    if k_one and K_OF_ONE not in given:
        problems.append(
            (
                "analytics.min_customers_per_cell",
                "1 publishes cells that describe a single customer; if that is meant, add "
                f"`acknowledge: [{K_OF_ONE}]` at the top level, else use 2 or more (5 is the default)",
            )
        )
    if ZERO_WINDOW in given and not zero:
        problems.append(
            ("acknowledge", f"'{ZERO_WINDOW}' is given but no retention window is 0; remove it")
        )
    if K_OF_ONE in given and not k_one:
        problems.append(
            ("acknowledge", f"'{K_OF_ONE}' is given but min_customers_per_cell is not 1; remove it")
        )
    return problems
