"""The verdict of a check, in one shape for every capability.

A check (a leak-guard scan, a carrier-access proof, a retention backlog) returns a `CheckResult`:
its findings, each saying where, what kind, how many rows and how to fix it, with masked samples
at most; the figures it looked at; and, when it could not run at all, why. A check that could
not run has failed: a proof that did not happen proves nothing. The Dagster asset checks and the
CLI show the same object (assets/check_results.py turns it into a `dg.AssetCheckResult`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

SHOWN_FINDINGS = 5


@dataclass(frozen=True)
class Finding:
    """One thing wrong: where, what kind, how many rows, masked samples and the fix; never a value."""

    table: str
    column: str
    kind: str
    count: int
    samples: tuple[str, ...] = ()
    detail: str = ""

    @property
    def where(self) -> str:
        return f"{self.table}.{self.column}" if self.column else self.table

    def line(self) -> str:
        shown = f" [{'; '.join(self.samples)}]" if self.samples else ""
        return f"{self.where}: {self.kind}, {self.count} row(s){shown}" + (
            f": {self.detail}" if self.detail else ""
        )


@dataclass
class CheckResult:
    """What one check looked at (`scanned`, `figures`), what it found, and whether it ran at all.

    `accepted` holds findings the policy accepts for now (an audited exception): still counted and
    shown, but they do not fail the check.
    """

    findings: list[Finding] = field(default_factory=list)
    accepted: list[Finding] = field(default_factory=list)
    scanned: dict[str, object] = field(default_factory=dict)
    figures: dict[str, object] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and not self.findings

    def description(self) -> str:
        """One line for a person: what failed, or that nothing did."""
        if self.error is not None:
            return f"could not run: {self.error}"
        accepted = f" ({len(self.accepted)} accepted finding(s))" if self.accepted else ""
        if not self.findings:
            return "no findings" + accepted
        shown = [f.line() for f in self.findings[:SHOWN_FINDINGS]]
        more = len(self.findings) - len(shown)
        return "; ".join(shown) + (f"; and {more} more" if more else "") + accepted

    def markdown(self) -> str:
        """The findings as a table, or a sentence when there are none."""
        if self.error is not None:
            return f"The check could not run: {self.error}"
        if not self.findings and not self.accepted:
            return "No findings."
        lines = [
            "| table | column | kind | rows | masked samples | what to do |",
            "|---|---|---|---:|---|---|",
        ]
        lines += [
            f"| {f.table} | {f.column} | {f.kind} | {f.count:,} | {'; '.join(f.samples)} | {f.detail} |"
            for f in self.findings
        ]
        lines += [
            f"| {f.table} | {f.column} | {f.kind} (accepted) | {f.count:,} | "
            f"{'; '.join(f.samples)} | {f.detail} |"
            for f in self.accepted
        ]
        return "\n".join(lines)

    def metadata(self) -> dict[str, object]:
        """Counts, names and figures only: what run metadata and a report may carry."""
        data: dict[str, object] = {
            "findings_count": len(self.findings),
            "rows_affected": sum(f.count for f in self.findings),
        }
        if self.findings:
            data["failed_on"] = sorted({f.where for f in self.findings})
        if self.accepted:
            data["accepted_count"] = len(self.accepted)
            data["accepted_rows"] = sum(f.count for f in self.accepted)
            data["accepted_on"] = sorted({f.where for f in self.accepted})
        if self.error is not None:
            data["error"] = self.error
        data.update({f"scanned_{k}": v for k, v in self.scanned.items()})
        data.update(self.figures)
        data["seconds"] = round(self.seconds, 3)
        return data
