"""How long personal fields stay bound to an order, and how the purge and erasure run."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lifecycle.policy.base import Strict

MAX_WINDOW_DAYS = 3650


class Retention(Strict):
    """How long personal fields stay bound to an order, and how the purge runs."""

    # Days, at most ten years: beyond that a window is a mistake, and dates overflow later.
    after_sales_window_days: int = Field(30, ge=0, le=MAX_WINDOW_DAYS)
    cancelled_retention_days: int = Field(30, ge=0, le=MAX_WINDOW_DAYS)
    abandoned_after_days: int = Field(90, ge=0, le=MAX_WINDOW_DAYS)
    stale_in_service_days: int = Field(60, ge=0, le=MAX_WINDOW_DAYS)
    batch_size: int = Field(50_000, ge=1, le=1_000_000)
    physical_erasure: Literal["vacuum_full", "none"] = "vacuum_full"
    erasure_lock_timeout_seconds: int = Field(30, ge=1, le=3600)
    # How long cleared values may stay in the data files while a rewrite waits for old snapshots.
    erasure_deadline_hours: int = Field(48, ge=1, le=24 * 90)
