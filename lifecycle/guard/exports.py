"""Access exports on disk: they are meant to hold a customer's personal data, so the proof is not
that they are clean but that they are private (0600 files in 0700 folders), inside the configured
export folder (no link leading elsewhere), and gone once `requests.export_retention_days` has
passed (the nightly deletes them; one still there has outlived its purpose). Names and ages only:
no file is opened."""

from __future__ import annotations

import stat
from datetime import datetime, timedelta
from pathlib import Path

from lifecycle.checks import CheckResult, Finding
from lifecycle.guard.scan import scan
from lifecycle.policy import Policy

WHERE = "export folder"
OPEN_TO_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def _finding(relative: str, kind: str, detail: str) -> Finding:
    return Finding(WHERE, relative, kind, 1, detail=detail)


@scan
def access_exports(folder: Path, policy: Policy, as_of: datetime) -> CheckResult:
    """Every access export is private, inside `folder`, and younger than the retention allows."""
    findings: list[Finding] = []
    if not folder.exists():
        return CheckResult(scanned={"exports": 0, "files": 0})
    root = folder.resolve()
    # A day of grace: the nightly deletes expired exports once a night, maybe after this check.
    cutoff = as_of - timedelta(days=policy.requests.export_retention_days + 1)
    exports = files = 0
    for path in sorted(folder.rglob("*")):
        relative = str(path.relative_to(folder))
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode) or not path.resolve().is_relative_to(root):
            findings.append(
                _finding(relative, "outside_folder", "a link out of the export folder; remove it")
            )
            continue
        if info.st_mode & OPEN_TO_OTHERS:
            wanted = "0700" if path.is_dir() else "0600"
            findings.append(
                _finding(
                    relative,
                    "not_private",
                    f"mode {stat.S_IMODE(info.st_mode):04o}; make it {wanted} (owner only)",
                )
            )
        if path.is_file():
            files += 1
        elif path.parent == folder:
            exports += 1
            written = datetime.fromtimestamp(info.st_mtime, as_of.tzinfo)
            if written <= cutoff:
                findings.append(
                    _finding(
                        relative,
                        "kept_too_long",
                        f"written {(as_of - written).days} days ago, longer than "
                        f"requests.export_retention_days={policy.requests.export_retention_days}; "
                        "the nightly's expired_exports step should have deleted it",
                    )
                )
    return CheckResult(findings, scanned={"exports": exports, "files": files})
