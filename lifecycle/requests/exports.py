"""Access exports on disk: where each is written, and deleting them once they must not exist.

An erasure deletes the customer's earlier exports (no copy outlives the data) except one the same
run has just written, and the nightly job deletes any export older than
`requests.export_retention_days`.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.orders import SAMPLE_IDS
from lifecycle.policy import Policy
from lifecycle.requests.audit import Audit
from lifecycle.requests.table import REQUESTS_TABLE

EXPORTS_SUBDIR = "requests"
# Every folder `export_folder` writes, negative ids too (request_id is any bigint the website
# gives): a folder of a negative id did not match, was never deleted, and past the retention the
# guard's export check failed every night.
_EXPORT_FOLDER = re.compile(r"^request-(-?\d{1,19})$")


def export_folder(exports: Path, request_id: int) -> Path:
    """Where the access export of `request_id` is written, inside the requests' export folder."""
    return exports / f"request-{int(request_id)}"


# The customer's access requests, and whether each was answered by the run now erasing: an
# export written in the same batch as the erasure is kept until its own expiry (docs/requests.md).
_ACCESS_REQUESTS = sa.text(f"""
    SELECT request_id, coalesce(result->>'run_id' = :run_id, false) AS same_run
    FROM {REQUESTS_TABLE} WHERE customer_id = :c AND kind = 'access' ORDER BY 1
""")


def delete_customer_exports(
    conn: Connection, exports: Path, customer_id: int, audit: Audit, run_id: str
) -> tuple[list[int], list[int]]:
    """Deletes the customer's earlier access exports; returns (deleted, kept) request ids.

    An erasure leaves no copy of the erased data in the export folder, except the exports this
    same run (`run_id`) has just written: the customer asked for that copy together with the
    erasure and support has not handed it over yet, so it stays until its own expiry
    (`requests.export_retention_days`, deleted by the nightly job like any other export).
    """
    access = conn.execute(_ACCESS_REQUESTS, {"c": customer_id, "run_id": run_id}).all()
    deleted, kept = [], []
    for access_id, same_run in access:
        folder = export_folder(exports, access_id)
        if not folder.exists():
            continue
        if same_run:
            kept.append(access_id)
            continue
        shutil.rmtree(folder)
        deleted.append(access_id)
    audit.many(
        "export_deleted",
        "deleted",
        [{"reason": "customer_erasure", "detail": {"export_request_id": i}} for i in deleted],
    )
    return deleted, kept


@dataclass
class ExpiredExports:
    """Access exports deleted because they outlived `requests.export_retention_days`."""

    deleted_request_ids: list[int]
    kept: int

    def metadata(self) -> dict[str, object]:
        """Counts and request ids for the run's materialization."""
        return {
            "deleted": len(self.deleted_request_ids),
            "deleted_request_ids": self.deleted_request_ids[:SAMPLE_IDS],
            "kept": self.kept,
        }


def delete_expired_exports(
    engine: Engine, policy: Policy, exports: Path, run_id: str, as_of: datetime | None = None
) -> ExpiredExports:
    """Deletes access exports older than the policy allows, so no copy outlives its purpose."""
    as_of = as_of or datetime.now(UTC)
    cutoff = as_of - timedelta(days=policy.requests.export_retention_days)
    deleted, kept = [], 0
    for folder in sorted(exports.iterdir()) if exports.is_dir() else []:
        match = _EXPORT_FOLDER.match(folder.name)
        if not match or not folder.is_dir():
            continue
        written = datetime.fromtimestamp(folder.stat().st_mtime, UTC)
        if written > cutoff:
            kept += 1
            continue
        shutil.rmtree(folder)
        deleted.append(int(match.group(1)))
    if deleted:
        with engine.begin() as conn:
            for request_id in deleted:
                Audit(conn, request_id, run_id).add(
                    "export_deleted",
                    "deleted",
                    reason="export_retention_elapsed",
                    detail={"export_retention_days": policy.requests.export_retention_days},
                )
    return ExpiredExports(deleted_request_ids=deleted, kept=kept)
