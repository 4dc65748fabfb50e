"""What a person reads after a run in the terminal: each step's counts with their meaning.

The run history keeps every figure of every step (the UI shows them); the terminal shows the few
a person acts on, one per line, its value aligned and its meaning beside it, with the metadata
key in brackets so the same figure can be found in the UI. Never a Python repr: dicts print as
`name 3, other 2`, lists as `1, 2, 3`, empty ones as `none`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

# For each asset, the figures shown and what each means, in the order a person reads them.
FIGURES: dict[str, tuple[tuple[str, str], ...]] = {
    "due_orders": (
        ("eligible", "orders past their after-sales window, to lose their personal fields"),
        ("kept_by_open_case", "orders past the window but kept: an after-sales case is open"),
        ("stale", "orders never finished and older than the policy's stale limit (to check)"),
        ("anomalies", "orders that cannot be judged (missing or future dates) and are kept"),
        ("oldest_overdue_days", "days the oldest overdue order has waited"),
    ),
    # `lifecycle due`: the whole standing, as the due_orders step computes it, changing nothing.
    "standing": (
        ("eligible", "orders past their after-sales window, to lose their personal fields"),
        ("kept_by_open_case", "past the window but kept: an after-sales case is open"),
        ("kept_by_recent_case", "past the window but kept: a case closed too recently"),
        ("waiting_for_window", "delivered or cancelled, their window still running"),
        ("in_service", "not yet delivered or cancelled"),
        ("stale", "never finished and older than the policy's stale limit (to check)"),
        ("stale_sample_order_ids", "some of them"),
        ("anomalies", "orders that cannot be judged (missing or future dates) and are kept"),
        ("anomaly_sample_order_ids", "some of them, by kind"),
        ("already_purged", "orders whose personal fields are already cleared"),
        ("oldest_overdue_days", "days the oldest overdue order has waited"),
    ),
    "purged_orders": (("purged", "orders whose personal fields were cleared by this run"),),
    "erased_purged_storage": (
        ("ran", "whether cleared values were also erased from the data files"),
        ("bytes_before", "bytes of the erased tables before"),
        ("bytes_after", "bytes after (old row versions gone)"),
    ),
    "carrier_handoff": (
        ("rows_by_carrier", "orders awaiting delivery each carrier can see"),
        ("removed_by_reason", "rows removed from the hand-off (delivered, cancelled, …)"),
    ),
    "carrier_files": (
        ("rows_by_carrier", "rows in each carrier's CSV file"),
        ("carriers_without_file", "carriers that get no file, and why"),
    ),
    "refreshed_sales_volume": (
        ("mode", "full rebuild or only the days whose orders changed"),
        ("days_rebuilt", "sales days rebuilt by this run"),
        ("rows_written", "published rows (day × sku × region) written"),
        ("units_total", "units sold on those days"),
        ("units_published", "units in published rows"),
        ("units_folded", "units published under region OTHER (their region had < k customers)"),
        ("units_withheld", "units in no published row: cells under k customers even folded"),
        ("min_customers_per_cell", "k: customers every published row covers at least"),
    ),
    "weekly_demand": (("rows", "rows of weekly demand per product line"),),
    "product_line_summary": (("rows", "rows of the product-line planning table"),),
    "analytics_zone": (
        ("relation_count", "relations in schema analytics the leak guard inspects"),
        ("relation_names", "their names"),
    ),
    "handled_data_requests": (
        ("handled", "data requests answered by this run"),
        ("by_status", "their outcome"),
        ("rejected_by_reason", "requests refused, by reason"),
        ("exports_written", "access exports written"),
        ("orders_cleared", "orders cleared for erasure requests"),
        ("orders_pending", "orders still in service, erased once delivered"),
        ("failed", "requests that failed (retried next time)"),
    ),
    "finished_erasure_requests": (
        ("requests_done", "erasure requests finished tonight (their last orders delivered)"),
        ("orders_cleared", "orders cleared for them"),
        ("failed", "requests that failed"),
    ),
    "expired_request_exports": (
        ("deleted", "access exports deleted: older than the policy keeps them"),
    ),
    "open_data_requests": (
        ("open", "data requests not yet completed"),
        ("overdue", "of them past the response deadline"),
    ),
}


def format_value(value: object, ids: bool = False) -> str:
    """A metadata value as a person reads it: counts with thousands separated (ids without), no
    brackets or quotes; a mapping of lists as `kind (1, 2)`."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value) if ids else f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, Mapping):
        parts = [
            f"{k} ({format_value(v, ids)})"
            if isinstance(v, list | tuple)
            else f"{k} {format_value(v, ids)}"
            for k, v in value.items()
        ]
        return ", ".join(parts) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v, ids) for v in value) or "none"
    return str(value)


def asset_lines(asset: str, metadata: Mapping[str, object]) -> Iterator[str]:
    """The asset's name, then one line per known figure: value, meaning, [metadata key]."""
    shown = [(key, meaning) for key, meaning in FIGURES.get(asset, ()) if key in metadata]
    if not shown:
        return
    yield asset
    for key, meaning in shown:
        value = format_value(metadata[key], ids=key.endswith("_ids"))
        if len(value) <= 12:
            yield f"  {value:>12}  {meaning} [{key}]"
        else:  # a list or a per-carrier figure: its meaning first, then the values
            yield f"  {'':>12}  {meaning} [{key}]: {value}"


def checks_line(results: list[tuple[str, bool]]) -> str:
    """All checks in one line when they passed; the failed ones by name otherwise."""
    failed = [name for name, passed in results if not passed]
    if not failed:
        return f"checks: all {len(results)} passed"
    return f"checks: {len(failed)} of {len(results)} FAILED: {', '.join(failed)}"
