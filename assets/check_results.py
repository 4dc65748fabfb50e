"""One adapter from the domain's check verdict to Dagster's: every asset check reports alike."""

import dagster as dg

from lifecycle.checks import CheckResult


def as_asset_check_result(result: CheckResult) -> dg.AssetCheckResult:
    """The verdict with its counts and figures as metadata and its findings as a table; never a value."""
    metadata = result.metadata()
    if not result.passed:  # a passing check shows its figures, not an empty findings table
        metadata["findings"] = dg.MetadataValue.md(result.markdown())
    return dg.AssetCheckResult(
        passed=result.passed, description=result.description(), metadata=metadata
    )
