"""The guard's results for a terminal: one status line per check, then a table of findings.

Check names are the caller's (the registry in assets/guard.py): a result does not know its name.
"""

from __future__ import annotations

from collections.abc import Iterable

from lifecycle.checks import CheckResult

NAME_WIDTH = 40


def status_line(name: str, result: CheckResult) -> str:
    """One line per check: its verdict and what it looked at, or why it could not run."""
    if result.error is not None:
        verdict, looked_at = "ERROR", f"could not run: {result.error}"
    else:
        verdict = "passed" if result.passed else f"FAILED ({len(result.findings)})"
        looked_at = " ".join(f"{k}={v}" for k, v in result.scanned.items())
    return f"{name:<{NAME_WIDTH}} {verdict:<12} {result.seconds:6.2f} s  {looked_at}"


def findings_table(results: Iterable[tuple[str, CheckResult]]) -> str:
    """Every finding of the named results as an aligned text table, each followed by its check's
    name and the fix."""
    named = [(name, f) for name, result in results for f in result.findings]
    header = ("TABLE", "COLUMN", "KIND", "ROWS", "MASKED SAMPLES")
    rows = [
        (f.table, f.column or "-", f.kind, str(f.count), "; ".join(f.samples) or "-")
        for _, f in named
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def aligned(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()

    lines = [aligned(header)]
    for (name, finding), row in zip(named, rows, strict=True):
        lines += [aligned(row), f"    {name}: {finding.detail}"]
    return "\n".join(lines)
