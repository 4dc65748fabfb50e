"""Answering an access request: everything held about the customer as one JSON document.

The document and a manifest (SHA-256, byte and row counts) are written to
<export folder>/requests/request-<id>/ (folder 0700, files 0600, each file whole or not at all);
the content reaches no log, result or metadata.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.files import private_dir, write_private
from lifecycle.policy import Policy
from lifecycle.requests.audit import Audit
from lifecycle.requests.exports import EXPORTS_SUBDIR, export_folder
from lifecycle.requests.outcome import Outcome
from lifecycle.requests.table import REQUESTS_TABLE


def _export_sql(policy: Policy) -> str:
    o, i, c = policy.raw.orders, policy.raw.order_items, policy.raw.after_sales_cases
    return f"""
    WITH mine AS (SELECT * FROM {o.sql} o WHERE o.{o.col("customer_id")} = :customer_id),
    doc AS (
        SELECT jsonb_build_object(
            'request_id', CAST(:request_id AS bigint),
            'customer_id', CAST(:customer_id AS bigint),
            'generated_at', CAST(:generated_at AS text),
            'policy_version', CAST(:policy_version AS text),
            'orders', coalesce((
                SELECT jsonb_agg(to_jsonb(m) || jsonb_build_object(
                    'items', coalesce((SELECT jsonb_agg(to_jsonb(i) - CAST(:item_order_col AS text)
                                                        ORDER BY i.{i.col("line_no")})
                                       FROM {i.sql} i WHERE i.{i.col("order_id")} = m.{o.col("order_id")}), '[]'),
                    'after_sales_cases', coalesce((SELECT jsonb_agg(to_jsonb(c) - CAST(:case_order_col AS text)
                                                                    ORDER BY c.{c.col("case_id")})
                                       FROM {c.sql} c WHERE c.{c.col("order_id")} = m.{o.col("order_id")}), '[]'))
                    ORDER BY m.{o.col("order_id")})
                FROM mine m), '[]'),
            'data_requests', coalesce((
                SELECT jsonb_agg(jsonb_build_object('request_id', r.request_id, 'kind', r.kind,
                        'status', r.status, 'received_at', r.received_at, 'completed_at', r.completed_at)
                    ORDER BY r.received_at, r.request_id)
                FROM {REQUESTS_TABLE} r WHERE r.customer_id = :customer_id), '[]'),
            'clearing_history', coalesce((
                SELECT jsonb_agg(jsonb_build_object('order_id', l.order_id, 'cleared_at', l.purged_at,
                        'action', l.action, 'reason', l.reason, 'columns', l.cleared_columns)
                    ORDER BY l.purged_at, l.order_id)
                FROM lifecycle.purge_ledger l WHERE l.order_id IN (SELECT m.{o.col("order_id")} FROM mine m)), '[]')
        ) AS doc
    )
    SELECT jsonb_pretty(doc), jsonb_array_length(doc -> 'orders'),
           (SELECT count(*) FROM jsonb_array_elements(doc -> 'orders') e, jsonb_array_elements(e -> 'items')),
           (SELECT count(*) FROM jsonb_array_elements(doc -> 'orders') e,
                                 jsonb_array_elements(e -> 'after_sales_cases')),
           jsonb_array_length(doc -> 'data_requests'), jsonb_array_length(doc -> 'clearing_history')
    FROM doc
    """


def answer_access(
    conn: Connection, policy: Policy, exports: Path, row: dict, audit: Audit, run_id: str
) -> Outcome:
    """Writes the customer's export and manifest; the result names the files, their hash and counts."""
    request_id = row["request_id"]
    generated_at = datetime.now(UTC).isoformat()
    text, orders, items, cases, requests_, cleared = conn.execute(
        sa.text(_export_sql(policy)),
        {
            "request_id": request_id,
            "customer_id": row["customer_id"],
            "generated_at": generated_at,
            "policy_version": policy.version,
            "item_order_col": policy.raw.order_items.columns["order_id"],
            "case_order_col": policy.raw.after_sales_cases.columns["order_id"],
        },
    ).one()
    counts = {
        "orders": orders,
        "order_items": items,
        "after_sales_cases": cases,
        "data_requests": requests_,
        "clearing_history": cleared,
    }
    folder = export_folder(exports, request_id)
    private_dir(exports)
    private_dir(folder)
    export = write_private(folder / "export.json", (text + "\n").encode("utf-8"))
    manifest = {
        "request_id": request_id,
        "generated_at": generated_at,
        "file": "export.json",
        "sha256": export.sha256,
        "bytes": export.bytes,
        "counts": counts,
        "policy_version": policy.version,
        "run_id": run_id,
    }
    write_private(folder / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    relative = f"{EXPORTS_SUBDIR}/{folder.name}/export.json"
    audit.add(
        "access_export",
        "exported",
        detail={"file": relative, "sha256": export.sha256, "counts": counts},
    )
    return Outcome(
        "done",
        {
            "kind": "access",
            "run_id": run_id,
            "export": relative,
            "manifest": f"{EXPORTS_SUBDIR}/{folder.name}/manifest.json",
            "sha256": export.sha256,
            "bytes": export.bytes,
            "counts": counts,
        },
        export_bytes=export.bytes,
    )
