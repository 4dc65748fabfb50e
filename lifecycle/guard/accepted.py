"""Audited exceptions applied to a check's findings: what the policy accepts (`guard.accepted_findings`,
lifecycle.policy.guard) moves from the findings to `accepted`, still counted and shown, until the
day after its expiry, when it fails the check again."""

from __future__ import annotations

import dataclasses
from datetime import date

from lifecycle.checks import CheckResult, Finding
from lifecycle.policy.guard import AcceptedFinding


def apply(result: CheckResult, accepted: tuple[AcceptedFinding, ...], today: date) -> CheckResult:
    """`result` with the findings the policy accepts on `today` moved to `result.accepted`."""
    findings, kept = [], list(result.accepted)
    for finding in result.findings:
        rule = next(
            (a for a in accepted if a.covers(finding.table, finding.column, finding.kind)), None
        )
        if rule is None:
            findings.append(finding)
        elif today <= rule.expires:
            kept.append(_noted(finding, f"accepted until {rule.expires}: {rule.reason}"))
        else:
            note = (
                f"its acceptance expired on {rule.expires}; fix it or renew guard.accepted_findings"
            )
            findings.append(_noted(finding, note))
    return dataclasses.replace(result, findings=findings, accepted=kept)


def _noted(finding: Finding, note: str) -> Finding:
    return dataclasses.replace(
        finding, detail=f"{finding.detail}; {note}" if finding.detail else note
    )
