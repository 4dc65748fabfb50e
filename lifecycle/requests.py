"""Customers' data requests: access, correction and erasure, each answered with its reasons.

The website inserts rows into shop.data_requests; `handle_requests` answers the open ones, each
in its own transaction with its row locked (FOR UPDATE SKIP LOCKED), so two overlapping runs never
answer the same request and a request whose handling fails stays open for the next run.

- access: everything held about the customer as one JSON document plus a manifest, written to
  <export folder>/requests/request-<id>/ (folder 0700, files 0600); the content reaches no log or metadata.
- correct: receiving contact and address fields (policy `requests.correctable_columns`) of orders
  still in service (placed, paid); other fields and orders are refused with a reason.
- erase: the purge's own batch statement under the requested-erasure rule (lifecycle/purge.py);
  orders in delivery or with an open case wait in lifecycle.pending_erasures and the nightly job
  finishes them (`finish_pending_erasures`), turning the request `done` then.
- bad input (unknown kind or customer, malformed payload, duplicate): `rejected`, nothing changed.

`result` and lifecycle.request_actions hold ids, column names and reason codes, never a value;
once answered, a payload keeps its field names and order ids only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.orders import MAX_BIGINT
from lifecycle.retention import purge
from lifecycle.db import describe_db_error
from lifecycle.policy import IDENTIFIER, Policy, quote_ident

REQUESTS_TABLE = "shop.data_requests"  # fixed by the website's contact channel, not mapped by the policy
KINDS = ("access", "correct", "erase")
IN_SERVICE = ("placed", "paid")
MAX_VALUE_LENGTH = 500
MAX_ORDER_IDS = 1000
LISTED_IDS = 1000  # ids listed in a result; the counts are always complete
SAMPLE = 20
EXPORTS_SUBDIR = "requests"

WAITING_MESSAGES = {
    "in_delivery": "being delivered: erased once delivered or cancelled",
    "open_after_sales_case": "an after-sales case is open: erased once it closes",
    "changed_during_request": "changed while the request ran: checked again by the nightly job",
}
REFUSALS = {
    "not_correctable": "not a receiving contact or address field (policy requests.correctable_columns)",
    "unknown_order": "not an order of this customer",
    "purged": "its personal fields were already cleared",
    "already_shipped": "already shipped: the carrier holds the address",
    "already_delivered": "already delivered",
    "cancelled": "cancelled",
    "not_in_service": "not in service (status cannot be judged)",
}


class RequestInputError(ValueError):
    """A request that cannot be answered as sent: `code` for counting, message for the reader."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


def shown(value: Any) -> str:
    """A name fit for a reason or log line: short identifiers as they are, anything else masked."""
    if isinstance(value, str) and IDENTIFIER.match(value) and len(value) <= 40:
        return repr(value)
    length = len(value) if isinstance(value, str) else len(json.dumps(value, default=str))
    return f"({length} characters, not shown)"


# ---------------------------------------------------------------- payloads

@dataclass(frozen=True)
class Correction:
    """A parsed correction: the new values by column, and the orders it names (None: all)."""

    fields: dict[str, str]
    order_ids: tuple[int, ...] | None


def _known_columns(policy: Policy) -> set[str]:
    o = policy.raw.orders
    return set(o.columns.values()) | set(o.personal_columns) | set(o.kept_columns)


def correctable_columns(policy: Policy) -> list[str]:
    """Columns a correction may change: the policy's list, as far as this shop holds them."""
    personal = policy.raw.orders.personal_columns
    return [col for col in policy.requests.correctable_columns if col in personal]


def parse_payload(kind: str, payload: Any, policy: Policy) -> Correction | None:
    """Validates a request's kind and payload; raises RequestInputError naming the field and fix."""
    if kind not in KINDS:
        raise RequestInputError("unknown_kind", f"kind {shown(kind)} is not one of {', '.join(KINDS)}")
    if kind in ("access", "erase"):
        if payload not in (None, {}):
            keys = sorted(payload) if isinstance(payload, dict) else [payload]
            raise RequestInputError(
                "unknown_payload_fields",
                f"an {kind} request takes no payload; got {', '.join(shown(k) for k in keys)}")
        return None
    example = 'write {"fields": {"receiver_phone": "..."}, "order_ids": [101]} (order_ids optional)'
    if not isinstance(payload, dict):
        raise RequestInputError("malformed_payload", f"a correct request needs a JSON object payload; {example}")
    extra = sorted(set(payload) - {"fields", "order_ids"})
    if extra:
        raise RequestInputError(
            "unknown_payload_fields",
            f"payload field(s) {', '.join(shown(k) for k in extra)} are not known; {example}")
    fields = payload.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise RequestInputError("malformed_payload", f"payload.fields must name at least one field; {example}")
    known = _known_columns(policy)
    unknown = sorted((name for name in fields if name not in known), key=str)
    if unknown:
        raise RequestInputError(
            "unknown_payload_fields",
            f"payload.fields {', '.join(shown(k) for k in unknown)} are not columns of "
            f"{policy.raw.orders.table}; correctable: {', '.join(correctable_columns(policy))}")
    for name, value in fields.items():
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_VALUE_LENGTH:
            raise RequestInputError(
                "malformed_payload",
                f"payload.fields.{name} must be non-empty text of at most {MAX_VALUE_LENGTH} characters")
    order_ids = payload.get("order_ids")
    if order_ids is not None:
        if (not isinstance(order_ids, list) or not order_ids or len(order_ids) > MAX_ORDER_IDS
                or not all(type(i) is int and 0 < i <= MAX_BIGINT for i in order_ids)):
            raise RequestInputError(
                "malformed_payload",
                f"payload.order_ids must be a list of 1 to {MAX_ORDER_IDS} positive order ids; {example}")
        order_ids = tuple(sorted(set(order_ids)))
    return Correction(fields=dict(fields), order_ids=order_ids)


def redacted(payload: Any) -> Any:
    """The payload without its values: field names (when they are plain names) and order ids."""
    if payload in (None, {}):
        return payload
    if not isinstance(payload, dict):
        return {"values_removed": True}
    out: dict[str, Any] = {"values_removed": True}
    fields = payload.get("fields")
    if isinstance(fields, dict):
        out["fields"] = sorted(k for k in fields if isinstance(k, str) and IDENTIFIER.match(k))
    ids = payload.get("order_ids")
    if isinstance(ids, list) and all(type(i) is int for i in ids):
        out["order_ids"] = ids[:MAX_ORDER_IDS]
    return out


# ---------------------------------------------------------------- handling a batch

@dataclass
class Outcome:
    """How one request was answered: its new status and result (ids and codes only)."""

    status: str
    result: dict[str, Any]
    cleared: int = 0
    pending: int = 0
    export_bytes: int = 0


@dataclass
class RequestsReport:
    """What one run did with the requests: counts and request ids, never a value."""

    run_id: str
    as_of: datetime
    statuses: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    handled_ids: list[int] = field(default_factory=list)
    skipped_ids: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    orders_cleared: int = 0
    orders_pending: int = 0
    exports_written: int = 0

    def add(self, request_id: int, kind: str, outcome: Outcome) -> None:
        self.handled_ids.append(request_id)
        self.statuses[outcome.status] = self.statuses.get(outcome.status, 0) + 1
        label = kind if kind in KINDS else "unknown"
        self.kinds[label] = self.kinds.get(label, 0) + 1
        if outcome.status == "rejected":
            code = outcome.result.get("reason_code", "refused")
            self.rejected[code] = self.rejected.get(code, 0) + 1
        self.orders_cleared += outcome.cleared
        self.orders_pending += outcome.pending
        self.exports_written += 1 if outcome.export_bytes else 0

    def metadata(self) -> dict[str, object]:
        """Counts and request ids for the run's materialization."""
        return {
            "handled": len(self.handled_ids),
            "by_status": self.statuses,
            "by_kind": self.kinds,
            "rejected_by_reason": self.rejected,
            "failed": len(self.failed),
            "failed_request_ids": sorted(self.failed)[:SAMPLE],
            "handled_request_ids": self.handled_ids[:SAMPLE],
            "skipped_request_ids": self.skipped_ids[:SAMPLE],
            "orders_cleared": self.orders_cleared,
            "orders_pending": self.orders_pending,
            "exports_written": self.exports_written,
            "as_of": self.as_of.isoformat(),
        }


_OPEN_IDS = sa.text("""
    SELECT request_id FROM shop.data_requests
    WHERE status IN ('received', 'in_progress')
      AND (CAST(:ids AS bigint[]) IS NULL OR request_id = ANY(CAST(:ids AS bigint[])))
    ORDER BY received_at, request_id
    LIMIT :limit
""")
_CLAIM = sa.text("""
    UPDATE shop.data_requests r SET status = 'in_progress'
    FROM (SELECT request_id FROM shop.data_requests
          WHERE request_id = ANY(:ids) AND status = 'received' FOR UPDATE SKIP LOCKED) s
    WHERE r.request_id = s.request_id
""")
# Earlier requests with the same customer, kind and payload that were still open when this one
# arrived. Computed before any request of the batch is answered (answering redacts a payload).
_DUPLICATE_CANDIDATES = sa.text("""
    SELECT r.request_id, array_agg(e.request_id ORDER BY e.received_at, e.request_id)
    FROM shop.data_requests r
    JOIN shop.data_requests e
      ON e.customer_id = r.customer_id AND e.kind = r.kind
     AND coalesce(nullif(e.payload, 'null'), '{}') = coalesce(nullif(r.payload, 'null'), '{}')
     AND (e.received_at, e.request_id) < (r.received_at, r.request_id)
     AND e.status <> 'rejected'
     AND (e.completed_at IS NULL OR e.completed_at > r.received_at)
    WHERE r.request_id = ANY(:ids)
    GROUP BY r.request_id
""")
_FIRST_NOT_REJECTED = sa.text("""
    SELECT request_id, status FROM shop.data_requests
    WHERE request_id = ANY(:ids) AND status <> 'rejected'
    ORDER BY received_at, request_id LIMIT 1
""")
_LOCK = sa.text("""
    SELECT request_id, customer_id, kind, payload, received_at FROM shop.data_requests
    WHERE request_id = :request_id AND status IN ('received', 'in_progress')
    FOR UPDATE SKIP LOCKED
""")
_ANSWER = sa.text("""
    UPDATE shop.data_requests
    SET status = :status, result = CAST(:result AS jsonb), payload = CAST(:payload AS jsonb),
        completed_at = CASE WHEN :complete THEN now() END
    WHERE request_id = :request_id
""")
_AUDIT = sa.text("""
    INSERT INTO lifecycle.request_actions
        (request_id, run_id, action, order_id, columns, outcome, reason, detail)
    VALUES (:request_id, :run_id, :action, :order_id, CAST(:columns AS text[]), :outcome, :reason,
            CAST(:detail AS jsonb))
""")


def open_request_ids(engine: Engine, limit: int = 10_000) -> list[int]:
    """Requests not yet answered (received, or in progress by a run that may have failed), oldest first."""
    with engine.connect() as conn:
        return list(conn.execute(_OPEN_IDS, {"ids": None, "limit": limit}).scalars())


def handle_requests(
    engine: Engine,
    policy: Policy,
    exports: Path,
    run_id: str,
    request_ids: list[int] | None = None,
    as_of: datetime | None = None,
    on_request: Callable[[int, str, str], None] | None = None,
) -> RequestsReport:
    """Answers the open requests among `request_ids` (all open ones when None), oldest first.

    Each request is one transaction; a request that fails (database or file error) is rolled
    back, stays open and is named in `report.failed`, and the others go on.
    """
    as_of = as_of or datetime.now(timezone.utc)
    report = RequestsReport(run_id=run_id, as_of=as_of)
    with engine.begin() as conn:
        ids = list(conn.execute(_OPEN_IDS, {"ids": request_ids, "limit": None}).scalars())
        conn.execute(_CLAIM, {"ids": ids})
        duplicates = dict(conn.execute(_DUPLICATE_CANDIDATES, {"ids": ids}).all())
    if request_ids is not None:
        report.skipped_ids = sorted(set(request_ids) - set(ids))
    with engine.connect() as conn:  # one connection, one transaction per request
        for request_id in ids:
            try:
                with conn.begin():
                    row = conn.execute(_LOCK, {"request_id": request_id}).mappings().one_or_none()
                    if row is None:  # answered or being answered by another run meanwhile
                        report.skipped_ids.append(request_id)
                        continue
                    outcome = _answer(conn, policy, exports, run_id, dict(row),
                                      duplicates.get(request_id, []), as_of)
                    conn.execute(_ANSWER, {
                        "request_id": request_id, "status": outcome.status,
                        "result": json.dumps(outcome.result), "payload": _json_or_null(redacted(row["payload"])),
                        "complete": not (outcome.status == "partly_done" and row["kind"] == "erase"),
                    })
            except (sa.exc.SQLAlchemyError, OSError, purge.PurgeError) as exc:
                report.failed[request_id] = _describe_failure(exc)
                if on_request:
                    on_request(request_id, "?", "failed: " + report.failed[request_id])
                continue
            report.add(request_id, row["kind"], outcome)
            if on_request:
                on_request(request_id, row["kind"] if row["kind"] in KINDS else "unknown", outcome.status)
    return report


def _json_or_null(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _describe_failure(exc: Exception) -> str:
    # Neither the driver's DETAIL nor a file's content may reach a log: class and code only.
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return describe_db_error(exc)
    if isinstance(exc, OSError):
        return f"{type(exc).__name__} (errno {exc.errno}: {exc.strerror})"
    return str(exc)


def _answer(conn: Connection, policy: Policy, exports: Path, run_id: str, row: dict,
            duplicate_candidates: list[int], as_of: datetime) -> Outcome:
    request_id, customer_id, kind = row["request_id"], row["customer_id"], row["kind"]
    audit = _Audit(conn, request_id, run_id)
    try:
        correction = parse_payload(kind, row["payload"], policy)
        _check_customer(conn, policy, customer_id)
        _check_duplicate(conn, duplicate_candidates)
    except RequestInputError as exc:
        audit.add("reject", "rejected", reason=exc.code)
        return Outcome("rejected", {"kind": kind if kind in KINDS else "unknown", "run_id": run_id,
                                    "reason_code": exc.code, "reason": str(exc)})
    if kind == "access":
        return _access(conn, policy, exports, row, audit, run_id)
    if kind == "correct":
        return _correct(conn, policy, row, correction, audit, run_id)
    return _erase(conn, policy, exports, row, audit, run_id, as_of)


class _Audit:
    """Rows of lifecycle.request_actions for one request: ids, column names and codes only."""

    def __init__(self, conn: Connection, request_id: int, run_id: str):
        self.conn, self.request_id, self.run_id = conn, request_id, run_id

    def add(self, action: str, outcome: str, order_id: int | None = None, columns: list[str] = (),
            reason: str | None = None, detail: dict | None = None) -> None:
        self.many(action, outcome, [dict(order_id=order_id, columns=list(columns), reason=reason, detail=detail)])

    def many(self, action: str, outcome: str, rows: list[dict]) -> None:
        if rows:
            self.conn.execute(_AUDIT, [
                {"request_id": self.request_id, "run_id": self.run_id, "action": action,
                 "outcome": outcome, "order_id": r.get("order_id"), "columns": list(r.get("columns", [])),
                 "reason": r.get("reason"),
                 "detail": json.dumps(r["detail"]) if r.get("detail") is not None else None}
                for r in rows])


def _check_customer(conn: Connection, policy: Policy, customer_id: int) -> None:
    o = policy.raw.orders
    known = conn.execute(sa.text(
        f"SELECT EXISTS (SELECT 1 FROM {o.sql} o WHERE o.{o.col('customer_id')} = :c)"), {"c": customer_id}).scalar()
    if not known:
        raise RequestInputError(
            "unknown_customer",
            f"no order of customer {customer_id} is held; check customer_id in shop.data_requests")


def _check_duplicate(conn: Connection, candidates: list[int]) -> None:
    if not candidates:
        return
    earlier = conn.execute(_FIRST_NOT_REJECTED, {"ids": candidates}).one_or_none()
    if earlier is not None:
        raise RequestInputError(
            "duplicate",
            f"same customer, kind and payload as request {earlier.request_id}, which was still open "
            f"when this one arrived (now {earlier.status}); that request answers it")


# ---------------------------------------------------------------- access

def _export_sql(policy: Policy) -> str:
    o, i, c = policy.raw.orders, policy.raw.order_items, policy.raw.after_sales_cases
    return f"""
    WITH mine AS (SELECT * FROM {o.sql} o WHERE o.{o.col('customer_id')} = :customer_id),
    doc AS (
        SELECT jsonb_build_object(
            'request_id', CAST(:request_id AS bigint),
            'customer_id', CAST(:customer_id AS bigint),
            'generated_at', CAST(:generated_at AS text),
            'policy_version', CAST(:policy_version AS text),
            'orders', coalesce((
                SELECT jsonb_agg(to_jsonb(m) || jsonb_build_object(
                    'items', coalesce((SELECT jsonb_agg(to_jsonb(i) - CAST(:item_order_col AS text)
                                                        ORDER BY i.{i.col('line_no')})
                                       FROM {i.sql} i WHERE i.{i.col('order_id')} = m.{o.col('order_id')}), '[]'),
                    'after_sales_cases', coalesce((SELECT jsonb_agg(to_jsonb(c) - CAST(:case_order_col AS text)
                                                                    ORDER BY c.{c.col('case_id')})
                                       FROM {c.sql} c WHERE c.{c.col('order_id')} = m.{o.col('order_id')}), '[]'))
                    ORDER BY m.{o.col('order_id')})
                FROM mine m), '[]'),
            'data_requests', coalesce((
                SELECT jsonb_agg(jsonb_build_object('request_id', r.request_id, 'kind', r.kind,
                        'status', r.status, 'received_at', r.received_at, 'completed_at', r.completed_at)
                    ORDER BY r.received_at, r.request_id)
                FROM shop.data_requests r WHERE r.customer_id = :customer_id), '[]'),
            'clearing_history', coalesce((
                SELECT jsonb_agg(jsonb_build_object('order_id', l.order_id, 'cleared_at', l.purged_at,
                        'action', l.action, 'reason', l.reason, 'columns', l.cleared_columns)
                    ORDER BY l.purged_at, l.order_id)
                FROM lifecycle.purge_ledger l WHERE l.order_id IN (SELECT m.{o.col('order_id')} FROM mine m)), '[]')
        ) AS doc
    )
    SELECT jsonb_pretty(doc), jsonb_array_length(doc -> 'orders'),
           (SELECT count(*) FROM jsonb_array_elements(doc -> 'orders') e, jsonb_array_elements(e -> 'items')),
           (SELECT count(*) FROM jsonb_array_elements(doc -> 'orders') e,
                                 jsonb_array_elements(e -> 'after_sales_cases')),
           jsonb_array_length(doc -> 'data_requests'), jsonb_array_length(doc -> 'clearing_history')
    FROM doc
    """


def export_folder(exports: Path, request_id: int) -> Path:
    """Where the access export of `request_id` is written, inside the requests' export folder."""
    return exports / f"request-{int(request_id)}"


def _write_private(path: Path, data: bytes) -> None:
    # Written beside its final name and renamed, so a reader never sees half a file; 0600 from
    # the first byte, whatever the umask.
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def _access(conn: Connection, policy: Policy, exports: Path, row: dict, audit: _Audit,
            run_id: str) -> Outcome:
    request_id = row["request_id"]
    generated_at = datetime.now(timezone.utc).isoformat()
    text, orders, items, cases, requests_, cleared = conn.execute(sa.text(_export_sql(policy)), {
        "request_id": request_id, "customer_id": row["customer_id"], "generated_at": generated_at,
        "policy_version": policy.version, "item_order_col": policy.raw.order_items.columns["order_id"],
        "case_order_col": policy.raw.after_sales_cases.columns["order_id"],
    }).one()
    data = (text + "\n").encode("utf-8")
    counts = {"orders": orders, "order_items": items, "after_sales_cases": cases,
              "data_requests": requests_, "clearing_history": cleared}
    digest = hashlib.sha256(data).hexdigest()
    folder = export_folder(exports, request_id)
    _private_dir(exports)
    _private_dir(folder)
    _write_private(folder / "export.json", data)
    manifest = {"request_id": request_id, "generated_at": generated_at, "file": "export.json",
                "sha256": digest, "bytes": len(data), "counts": counts, "policy_version": policy.version,
                "run_id": run_id}
    _write_private(folder / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    relative = f"{EXPORTS_SUBDIR}/{folder.name}/export.json"
    audit.add("access_export", "exported", detail={"file": relative, "sha256": digest, "counts": counts})
    return Outcome("done", {"kind": "access", "run_id": run_id, "export": relative, "manifest":
                            f"{EXPORTS_SUBDIR}/{folder.name}/manifest.json", "sha256": digest,
                            "bytes": len(data), "counts": counts}, export_bytes=len(data))


# ---------------------------------------------------------------- correction

def _order_states_sql(policy: Policy) -> str:
    o = policy.raw.orders
    oid = o.col("order_id")
    return f"""
    SELECT o.{oid}, o.{o.col('status')}, o.{o.col('purged_at')} IS NOT NULL
    FROM {o.sql} o
    WHERE o.{o.col('customer_id')} = :customer_id
      AND (CAST(:order_ids AS bigint[]) IS NULL OR o.{oid} = ANY(CAST(:order_ids AS bigint[])))
    ORDER BY o.{oid}
    FOR UPDATE
    """


def _refusal(status: str, purged: bool) -> str | None:
    if purged:
        return "purged"
    if status in IN_SERVICE:
        return None
    return {"shipped": "already_shipped", "delivered": "already_delivered",
            "cancelled": "cancelled"}.get(status, "not_in_service")


def _correct(conn: Connection, policy: Policy, row: dict, correction: Correction, audit: _Audit,
             run_id: str) -> Outcome:
    o = policy.raw.orders
    allowed = correctable_columns(policy)
    apply = {name: value for name, value in correction.fields.items() if name in allowed}
    refused_fields = sorted(name for name in correction.fields if name not in allowed)
    states = conn.execute(sa.text(_order_states_sql(policy)), {
        "customer_id": row["customer_id"],
        "order_ids": list(correction.order_ids) if correction.order_ids else None}).all()
    refused_orders = {order_id: why for order_id, status, purged in states
                      if (why := _refusal(status, purged))}
    held = {order_id for order_id, _, _ in states}
    refused_orders.update({order_id: "unknown_order" for order_id in correction.order_ids or ()
                           if order_id not in held})
    in_service = sorted(held - set(refused_orders))
    corrected: list[int] = []
    if apply and in_service:
        names = sorted(apply)
        sets = ", ".join(f"{quote_ident(name)} = :v{n}" for n, name in enumerate(names))
        # The service check is repeated in the UPDATE itself, next to the values it guards.
        corrected = sorted(conn.execute(sa.text(f"""
            UPDATE {o.sql} o SET {sets}
            WHERE o.{o.col('customer_id')} = :customer_id AND o.{o.col('order_id')} = ANY(:order_ids)
              AND o.{o.col('status')} IN ('placed', 'paid') AND o.{o.col('purged_at')} IS NULL
            RETURNING o.{o.col('order_id')}
        """), {"customer_id": row["customer_id"], "order_ids": in_service,
               **{f"v{n}": apply[name] for n, name in enumerate(names)}}).scalars())
    audit.many("correct", "corrected", [dict(order_id=i, columns=sorted(apply)) for i in corrected])
    audit.many("correct", "refused", [dict(order_id=i, reason=why) for i, why in sorted(refused_orders.items())])
    audit.many("correct", "refused", [dict(columns=[name], reason="not_correctable") for name in refused_fields])
    refusals = [{"order_id": i, "reason_code": why, "reason": REFUSALS[why]}
                for i, why in sorted(refused_orders.items())]
    refusals += [{"field": name, "reason_code": "not_correctable", "reason": REFUSALS["not_correctable"]}
                 for name in refused_fields]
    result: dict[str, Any] = {"kind": "correct", "run_id": run_id, "corrected_order_ids": corrected,
                              "corrected_fields": sorted(apply) if corrected else [], "refused": refusals}
    if corrected and not refusals:
        return Outcome("done", result)
    if corrected:
        result["reason"] = f"{len(refusals)} part(s) of the request refused; see `refused`"
        return Outcome("partly_done", result)
    if not states and not correction.order_ids:
        why = "no order of this customer is held"
    elif not apply:
        why = "none of the fields may be corrected"
    else:
        why = "no order of this customer named by the request is still in service (placed or paid)"
    result.update(reason_code="nothing_correctable", reason=f"nothing corrected: {why}")
    return Outcome("rejected", result)


# ---------------------------------------------------------------- erasure

def _erase(conn: Connection, policy: Policy, exports: Path, row: dict, audit: _Audit,
           run_id: str, as_of: datetime) -> Outcome:
    o = policy.raw.orders
    request_id, customer_id = row["request_id"], row["customer_id"]
    held, already = conn.execute(sa.text(f"""
        SELECT coalesce(array_agg(o.{o.col('order_id')} ORDER BY o.{o.col('order_id')})
                        FILTER (WHERE o.{o.col('purged_at')} IS NULL), '{{}}'),
               count(*) FILTER (WHERE o.{o.col('purged_at')} IS NOT NULL)
        FROM {o.sql} o WHERE o.{o.col('customer_id')} = :customer_id
    """), {"customer_id": customer_id}).one()
    erased = purge.erase_for_request(conn, policy, run_id=run_id, request_id=request_id,
                                     customer_id=customer_id, order_ids=list(held), as_of=as_of)
    waiting = {order_id: why or "changed_during_request" for order_id, why in erased.waiting.items()}
    _record_pending(conn, request_id, waiting)
    audit.many("erase", "pending", [dict(order_id=i, reason=why) for i, why in waiting.items()])
    deleted = _delete_exports(conn, exports, customer_id, audit)
    result = {"kind": "erase", "run_id": run_id, "cleared_order_ids": erased.cleared[:LISTED_IDS],
              "cleared_orders": len(erased.cleared), "case_notes_cleared": erased.notes_cleared,
              "already_cleared_orders": already, "exports_deleted": deleted, **_pending_result(waiting)}
    outcome = Outcome("partly_done" if waiting else "done", result, cleared=len(erased.cleared),
                      pending=len(waiting))
    return outcome


def _pending_result(waiting: dict[int, str]) -> dict[str, Any]:
    pending = [{"order_id": i, "waiting_for": why, "erasable_from": None} for i, why in sorted(waiting.items())]
    if not pending:
        return {"pending": []}
    counts: dict[str, int] = {}
    for why in waiting.values():
        counts[why] = counts.get(why, 0) + 1
    parts = [f"{n} order(s) {WAITING_MESSAGES.get(why, why + ': kept until the row can be judged')}"
             for why, n in sorted(counts.items())]
    return {"pending": pending[:LISTED_IDS],
            "reason": "; ".join(parts) + ". The nightly job finishes them and marks this request done."}


_RECORD_PENDING = sa.text("""
    INSERT INTO lifecycle.pending_erasures (request_id, order_id, waiting_for)
    SELECT :request_id, w.order_id, w.why
    FROM unnest(CAST(:order_ids AS bigint[]), CAST(:whys AS text[])) AS w(order_id, why)
    ON CONFLICT (request_id, order_id) DO UPDATE SET waiting_for = EXCLUDED.waiting_for
""")


def _record_pending(conn: Connection, request_id: int, waiting: dict[int, str]) -> None:
    if waiting:
        ids = sorted(waiting)
        conn.execute(_RECORD_PENDING, {"request_id": request_id, "order_ids": ids,
                                       "whys": [waiting[i] for i in ids]})


def _delete_exports(conn: Connection, exports: Path, customer_id: int, audit: _Audit) -> list[int]:
    """Deletes the customer's earlier access exports: an erasure leaves no copy in the export folder."""
    access_ids = conn.execute(sa.text(
        "SELECT request_id FROM shop.data_requests WHERE customer_id = :c AND kind = 'access' ORDER BY 1"),
        {"c": customer_id}).scalars().all()
    deleted = []
    for access_id in access_ids:
        folder = export_folder(exports, access_id)
        if folder.exists():
            shutil.rmtree(folder)
            deleted.append(access_id)
    audit.many("export_deleted", "deleted", [dict(reason="customer_erasure", detail={"export_request_id": i})
                                             for i in deleted])
    return deleted


# ---------------------------------------------------------------- finishing pending erasures

@dataclass
class FinishReport:
    """What the nightly pass did with erasures that were waiting: counts and request ids."""

    run_id: str
    requests_checked: int = 0
    requests_done: list[int] = field(default_factory=list)
    orders_cleared: int = 0
    orders_still_pending: int = 0
    failed: dict[int, str] = field(default_factory=dict)

    def metadata(self) -> dict[str, object]:
        return {
            "requests_checked": self.requests_checked,
            "requests_done": len(self.requests_done),
            "done_request_ids": self.requests_done[:SAMPLE],
            "orders_cleared": self.orders_cleared,
            "orders_still_pending": self.orders_still_pending,
            "failed": len(self.failed),
            "failed_request_ids": sorted(self.failed)[:SAMPLE],
        }


_WAITING_REQUESTS = sa.text("""
    SELECT DISTINCT p.request_id FROM lifecycle.pending_erasures p
    JOIN shop.data_requests r ON r.request_id = p.request_id
    WHERE p.erased_at IS NULL AND r.status = 'partly_done' AND r.kind = 'erase'
    ORDER BY 1
""")
_LOCK_WAITING = sa.text("""
    SELECT request_id, customer_id, result FROM shop.data_requests
    WHERE request_id = :request_id AND status = 'partly_done' AND kind = 'erase'
    FOR UPDATE SKIP LOCKED
""")
_STILL_PENDING = sa.text("""
    SELECT order_id FROM lifecycle.pending_erasures
    WHERE request_id = :request_id AND erased_at IS NULL ORDER BY order_id
""")
_FINISH = sa.text("""
    UPDATE shop.data_requests
    SET status = :status, result = CAST(:result AS jsonb),
        completed_at = CASE WHEN :status = 'done' THEN now() END
    WHERE request_id = :request_id
""")


def _mark_erased_sql(policy: Policy) -> str:
    # An order cleared by this pass or by the retention purge meanwhile counts as erased; the
    # instant it became erasable is its last delivery, cancellation or case closing.
    o, c = policy.raw.orders, policy.raw.after_sales_cases
    return f"""
    UPDATE lifecycle.pending_erasures p
    SET erased_at = o.{o.col('purged_at')},
        erasable_from = greatest(o.{o.col('delivered_at')}, o.{o.col('cancelled_at')},
            (SELECT max(c.{c.col('closed_at')}) FROM {c.sql} c WHERE c.{c.col('order_id')} = p.order_id))
    FROM {o.sql} o
    WHERE p.request_id = :request_id AND p.erased_at IS NULL
      AND o.{o.col('order_id')} = p.order_id AND o.{o.col('purged_at')} IS NOT NULL
    """


def finish_pending_erasures(engine: Engine, policy: Policy, run_id: str, as_of: datetime | None = None) -> FinishReport:
    """Clears what erasure requests were waiting for, once erasable; a request with nothing left is done."""
    as_of = as_of or datetime.now(timezone.utc)
    report = FinishReport(run_id=run_id)
    with engine.connect() as conn:  # one connection, one transaction per request
        with conn.begin():
            request_ids = list(conn.execute(_WAITING_REQUESTS).scalars())
        for request_id in request_ids:
            try:
                with conn.begin():
                    done = _finish_one(conn, policy, request_id, run_id, as_of)
            except (sa.exc.SQLAlchemyError, purge.PurgeError) as exc:
                report.failed[request_id] = _describe_failure(exc)
                continue
            if done is None:  # answered by another run meanwhile
                continue
            cleared, waiting = done
            report.requests_checked += 1
            report.orders_cleared += len(cleared)
            report.orders_still_pending += len(waiting)
            if not waiting:
                report.requests_done.append(request_id)
    return report


def _finish_one(conn: Connection, policy: Policy, request_id: int, run_id: str,
                as_of: datetime) -> tuple[list[int], dict[int, str]] | None:
    row = conn.execute(_LOCK_WAITING, {"request_id": request_id}).mappings().one_or_none()
    if row is None:
        return None
    pending = list(conn.execute(_STILL_PENDING, {"request_id": request_id}).scalars())
    erased = purge.erase_for_request(conn, policy, run_id=run_id, request_id=request_id,
                                     customer_id=row["customer_id"], order_ids=pending, as_of=as_of)
    conn.execute(sa.text(_mark_erased_sql(policy)), {"request_id": request_id})
    still = conn.execute(_STILL_PENDING, {"request_id": request_id}).scalars().all()
    waiting = {i: erased.waiting.get(i) or "changed_during_request" for i in still}
    _record_pending(conn, request_id, waiting)
    _Audit(conn, request_id, run_id).many("erase", "erased_later", [dict(order_id=i) for i in erased.cleared])
    result = dict(row["result"] or {})
    result["cleared_later_order_ids"] = (result.get("cleared_later_order_ids", []) + erased.cleared)[:LISTED_IDS]
    result["finished_by_run"] = None if waiting else run_id
    result.pop("reason", None)
    result.update(_pending_result(waiting))
    conn.execute(_FINISH, {"request_id": request_id, "status": "partly_done" if waiting else "done",
                           "result": json.dumps(result)})
    return erased.cleared, waiting


# ---------------------------------------------------------------- exports that expired

@dataclass
class ExpiredExports:
    """Access exports deleted because they outlived `requests.export_retention_days`."""

    deleted_request_ids: list[int]
    kept: int

    def metadata(self) -> dict[str, object]:
        return {"deleted": len(self.deleted_request_ids),
                "deleted_request_ids": self.deleted_request_ids[:SAMPLE], "kept": self.kept}


_EXPORT_FOLDER = re.compile(r"^request-(\d{1,19})$")


def delete_expired_exports(engine: Engine, policy: Policy, exports: Path, run_id: str,
                           as_of: datetime | None = None) -> ExpiredExports:
    """Deletes access exports older than the policy allows, so no copy outlives its purpose."""
    as_of = as_of or datetime.now(timezone.utc)
    cutoff = as_of - timedelta(days=policy.requests.export_retention_days)
    deleted, kept = [], 0
    for folder in sorted(exports.iterdir()) if exports.is_dir() else []:
        match = _EXPORT_FOLDER.match(folder.name)
        if not match or not folder.is_dir():
            continue
        written = datetime.fromtimestamp(folder.stat().st_mtime, timezone.utc)
        if written > cutoff:
            kept += 1
            continue
        shutil.rmtree(folder)
        deleted.append(int(match.group(1)))
    if deleted:
        with engine.begin() as conn:
            for request_id in deleted:
                _Audit(conn, request_id, run_id).add(
                    "export_deleted", "deleted", reason="export_retention_elapsed",
                    detail={"export_retention_days": policy.requests.export_retention_days})
    return ExpiredExports(deleted_request_ids=deleted, kept=kept)


# ---------------------------------------------------------------- open requests and deadlines

@dataclass
class OpenRequests:
    """Requests not yet completed, oldest first, against the response deadline."""

    as_of: datetime
    deadline_days: int
    rows: list[tuple[int, str, str, datetime]]
    total: int
    overdue_ids: list[int]

    @property
    def overdue(self) -> int:
        return len(self.overdue_ids)

    def markdown(self, limit: int = 50) -> str:
        """Open requests by age, oldest first: what the UI shows."""
        lines = ["| request | kind | status | received (UTC) | age (days) | answer due | overdue |",
                 "|---:|---|---|---|---:|---|---|"]
        deadline = timedelta(days=self.deadline_days)
        for request_id, kind, status, received_at in self.rows[:limit]:
            age = (self.as_of - received_at).total_seconds() / 86400
            late = status != "partly_done" and received_at + deadline <= self.as_of
            due = ("answered, waiting" if status == "partly_done"
                   else (received_at + deadline).strftime("%Y-%m-%d %H:%M"))
            lines.append(f"| {request_id} | {kind if kind in KINDS else 'unknown'} | {status} | "
                         f"{received_at.strftime('%Y-%m-%d %H:%M')} | {age:.1f} | {due} | "
                         f"{'**yes**' if late else 'no'} |")
        if self.total > limit:
            lines.append(f"| … | | | | | | {self.total - limit} more |")
        if not self.rows:
            lines.append("| – | | | | | | no open request |")
        return "\n".join(lines)

    def metadata(self) -> dict[str, object]:
        by_status: dict[str, int] = {}
        for _, _, status, _ in self.rows:
            by_status[status] = by_status.get(status, 0) + 1
        oldest = (self.as_of - self.rows[0][3]).total_seconds() / 86400 if self.rows else 0.0
        return {
            "open": self.total,
            "open_by_status": by_status,
            "overdue": self.overdue,
            "overdue_request_ids": self.overdue_ids[:SAMPLE],
            "oldest_open_days": round(oldest, 2),
            "response_deadline_days": self.deadline_days,
            "open_by_age": self.markdown(),
        }


_OPEN_ROWS = sa.text("""
    SELECT request_id, kind, status, received_at FROM shop.data_requests
    WHERE completed_at IS NULL AND status IN ('received', 'in_progress', 'partly_done')
    ORDER BY received_at, request_id
    LIMIT :limit
""")
_OPEN_COUNTS = sa.text("""
    SELECT count(*),
           coalesce(array_agg(request_id ORDER BY received_at, request_id)
                    FILTER (WHERE status IN ('received', 'in_progress') AND received_at <= :deadline_cutoff),
                    '{}')
    FROM shop.data_requests
    WHERE completed_at IS NULL AND status IN ('received', 'in_progress', 'partly_done')
""")


def open_requests(engine: Engine, policy: Policy, as_of: datetime | None = None, limit: int = 500) -> OpenRequests:
    """Open requests by age; overdue are those not answered within `response_deadline_days`.

    A `partly_done` erasure has been answered (with its reasons) and waits on delivery or a case;
    it is listed but not overdue.
    """
    as_of = as_of or datetime.now(timezone.utc)
    days = policy.requests.response_deadline_days
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(_OPEN_ROWS, {"limit": limit})]
        total, overdue = conn.execute(_OPEN_COUNTS, {"deadline_cutoff": as_of - timedelta(days=days)}).one()
    return OpenRequests(as_of=as_of, deadline_days=days, rows=rows, total=total, overdue_ids=list(overdue))
