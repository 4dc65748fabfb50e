"""One adapter from the domain's check verdict to Dagster's: every asset check reports alike."""

import dagster as dg

from lifecycle.checks import CheckResult


def as_asset_check_result(
    result: CheckResult,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    check_name: str | None = None,
) -> dg.AssetCheckResult:
    """The verdict with its counts and figures as metadata and its findings as a table; never a value.

    `severity` WARN is for a check that names what only someone else can fix (a server setting);
    `check_name` says which check a step that answers several (a multi_asset_check) is reporting.
    """
    metadata = result.metadata()
    if not result.passed:  # a passing check shows its figures, not an empty findings table
        metadata["findings"] = dg.MetadataValue.md(result.markdown())
    return dg.AssetCheckResult(
        passed=result.passed,
        description=result.description(),
        metadata=metadata,
        severity=severity,
        check_name=check_name,
    )
