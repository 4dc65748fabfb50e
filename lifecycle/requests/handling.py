"""Answering a batch of requests: claim the open ones, then answer each in its own transaction.

Each request's row is locked (FOR UPDATE SKIP LOCKED) while it is answered, so two overlapping
runs never answer the same request, and a request whose handling fails (database or file error)
is rolled back and stays open for the next run, unless trying again cannot help (the database
refuses the same statement every time, by SQLSTATE, or handling this input raised): then it is
answered `failed` with its reason and stays open for a person. Bad input (unknown kind or customer,
malformed, oversized or too deeply nested payload, duplicate) is `rejected` with its reason,
nothing changed. Whatever one request does, the others are answered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.orders import SAMPLE_IDS, sql_list
from lifecycle.policy import Policy
from lifecycle.requests.access import answer_access
from lifecycle.requests.audit import Audit
from lifecycle.requests.correction import answer_correction
from lifecycle.requests.erasure import answer_erasure
from lifecycle.requests.failures import describe_failure, retry_may_help, sqlstate
from lifecycle.requests.outcome import Outcome
from lifecycle.requests.payload import (
    MAX_PAYLOAD_BYTES,
    RequestInputError,
    load_payload,
    parse_payload,
    redacted,
)
from lifecycle.requests.table import REQUESTS_TABLE, UNANSWERED, kind_label


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
        """Counts one answered request."""
        self.handled_ids.append(request_id)
        self.statuses[outcome.status] = self.statuses.get(outcome.status, 0) + 1
        label = kind_label(kind)
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
            "failed_request_ids": sorted(self.failed)[:SAMPLE_IDS],
            "handled_request_ids": self.handled_ids[:SAMPLE_IDS],
            "skipped_request_ids": self.skipped_ids[:SAMPLE_IDS],
            "orders_cleared": self.orders_cleared,
            "orders_pending": self.orders_pending,
            "exports_written": self.exports_written,
            "as_of": self.as_of.isoformat(),
        }


_OPEN_IDS = sa.text(f"""
    SELECT request_id FROM {REQUESTS_TABLE}
    WHERE status IN ({sql_list(UNANSWERED)})
      AND (CAST(:ids AS bigint[]) IS NULL OR request_id = ANY(CAST(:ids AS bigint[])))
    ORDER BY received_at, request_id
    LIMIT :limit
""")
_CLAIM = sa.text(f"""
    UPDATE {REQUESTS_TABLE} r SET status = 'in_progress'
    FROM (SELECT request_id FROM {REQUESTS_TABLE}
          WHERE request_id = ANY(:ids) AND status = 'received' FOR UPDATE SKIP LOCKED) s
    WHERE r.request_id = s.request_id
""")
# Earlier requests with the same customer, kind and payload that were still open when this one
# arrived. Computed before any request of the batch is answered (answering redacts a payload).
_DUPLICATE_CANDIDATES = sa.text(f"""
    SELECT r.request_id, array_agg(e.request_id ORDER BY e.received_at, e.request_id)
    FROM {REQUESTS_TABLE} r
    JOIN {REQUESTS_TABLE} e
      ON e.customer_id = r.customer_id AND e.kind = r.kind
     AND coalesce(nullif(e.payload, 'null'), '{{}}') = coalesce(nullif(r.payload, 'null'), '{{}}')
     AND (e.received_at, e.request_id) < (r.received_at, r.request_id)
     AND e.status <> 'rejected'
     AND (e.completed_at IS NULL OR e.completed_at > r.received_at)
    WHERE r.request_id = ANY(:ids)
    GROUP BY r.request_id
""")
_FIRST_NOT_REJECTED = sa.text(f"""
    SELECT request_id, status FROM {REQUESTS_TABLE}
    WHERE request_id = ANY(:ids) AND status <> 'rejected'
    ORDER BY received_at, request_id LIMIT 1
""")
# How long one request waits for a row another session holds (an order the shop's own session
# keeps locked, idle in its transaction): unbounded, one such lock held the requests job, and every
# request queued behind it, for as long as it lasted. Past it the request is rolled back, stays
# open and is named (LockNotAvailable, which a retry may pass), and the others are answered.
LOCK_TIMEOUT_MS = 10_000
# The payload comes as text, cut one character past the size bound (so an oversized one is still
# recognised, without carrying megabytes over), and is parsed here within bounds
# (payload.load_payload), never by the driver.
_LOCK = sa.text(f"""
    SELECT request_id, customer_id, kind, left(payload::text, {MAX_PAYLOAD_BYTES + 1}) AS payload,
           received_at
    FROM {REQUESTS_TABLE}
    WHERE request_id = :request_id AND status IN ({sql_list(UNANSWERED)})
    FOR UPDATE SKIP LOCKED
""")
_ANSWER = sa.text(f"""
    UPDATE {REQUESTS_TABLE}
    SET status = :status, result = CAST(:result AS jsonb),
        payload = CASE WHEN :keep_payload THEN payload ELSE CAST(:payload AS jsonb) END,
        completed_at = CASE WHEN :complete THEN now() END
    WHERE request_id = :request_id
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
    as_of = as_of or datetime.now(UTC)
    report = RequestsReport(run_id=run_id, as_of=as_of)
    with engine.begin() as conn:
        ids = list(conn.execute(_OPEN_IDS, {"ids": request_ids, "limit": None}).scalars())
        conn.execute(_CLAIM, {"ids": ids})
        duplicates = dict(conn.execute(_DUPLICATE_CANDIDATES, {"ids": ids}).all())
    if request_ids is not None:
        report.skipped_ids = sorted(set(request_ids) - set(ids))
    with engine.connect() as conn:  # one connection, one transaction per request
        for request_id in ids:
            row = None
            try:
                with conn.begin():
                    conn.execute(sa.text(f"SET LOCAL lock_timeout = {int(LOCK_TIMEOUT_MS)}"))
                    row = conn.execute(_LOCK, {"request_id": request_id}).mappings().one_or_none()
                    if row is None:  # answered or being answered by another run meanwhile
                        report.skipped_ids.append(request_id)
                        continue
                    outcome = _answer(
                        conn,
                        policy,
                        exports,
                        run_id,
                        dict(row),
                        duplicates.get(request_id, []),
                        as_of,
                    )
                    _write_answer(conn, request_id, row, outcome)
            except Exception as exc:  # one request's failure never stops the others
                outcome = _answer_failure(conn, request_id, row, run_id, exc)
                if outcome is None:  # rolled back; stays open for the next run
                    report.failed[request_id] = describe_failure(exc)
                    if on_request:
                        on_request(request_id, "?", "failed: " + report.failed[request_id])
                    continue
            kind = row["kind"] if row is not None else "?"
            report.add(request_id, kind, outcome)
            if on_request:
                on_request(request_id, kind_label(kind), outcome.status)
    return report


def _write_answer(conn: Connection, request_id: int, row, outcome: Outcome) -> None:
    """Writes the answer back; what is kept of the payload is its field names and order ids.

    A `failed` request keeps its payload whole: it is still open, and a person who fixes the
    cause sets it back to `received` to have it answered. Redacted then, a correction came back
    `rejected` for the `values_removed` it then held, and the customer's new values were gone."""
    failed = outcome.status == "failed"
    kept = _kept_payload(row["payload"]) if row is not None else {"values_removed": True}
    conn.execute(
        _ANSWER,
        {
            "request_id": request_id,
            "status": outcome.status,
            "result": json.dumps(outcome.result),
            "keep_payload": failed,
            "payload": None if kept is None or failed else json.dumps(kept),
            # Still open: an erasure waiting on delivery or a case, and a request that failed.
            "complete": not failed
            and not (outcome.status == "partly_done" and row["kind"] == "erase"),
        },
    )


def _kept_payload(text: str | None):
    try:
        return redacted(load_payload(text))
    except RequestInputError:  # too big or too deep to read: nothing of it is kept
        return {"values_removed": True}


def _answer_failure(
    conn: Connection, request_id: int, row, run_id: str, exc: Exception
) -> Outcome | None:
    """Answers `failed` a request that would fail the same way again; None when a retry may help."""
    if retry_may_help(exc):
        return None
    outcome = _failed(run_id, row["kind"] if row is not None else "?", exc)
    try:
        with conn.begin():
            _write_answer(conn, request_id, row, outcome)
    except Exception:  # the answer itself cannot be written: leave the request for the next run
        return None
    return outcome


def _failed(run_id: str, kind: str, exc: Exception) -> Outcome:
    """The answer to a request that fails the same way on every try: its reason, never a value."""
    state = sqlstate(exc)
    result = {"kind": kind_label(kind), "run_id": run_id}
    if state:
        result.update(
            reason_code="database_error",
            sqlstate=state,
            reason=f"the database refused the change ({describe_failure(exc)}); fix the cause, "
            "then set status back to 'received' to answer it again",
        )
    else:
        result.update(
            reason_code="internal_error",
            reason=f"{describe_failure(exc)} while answering; see the run's log, fix the cause, "
            "then set status back to 'received'",
        )
    return Outcome("failed", result)


def _answer(
    conn: Connection,
    policy: Policy,
    exports: Path,
    run_id: str,
    row: dict,
    duplicate_candidates: list[int],
    as_of: datetime,
) -> Outcome:
    request_id, customer_id, kind = row["request_id"], row["customer_id"], row["kind"]
    audit = Audit(conn, request_id, run_id)
    try:
        correction = parse_payload(kind, load_payload(row["payload"]), policy)
        _check_customer(conn, policy, customer_id)
        _check_duplicate(conn, policy, row, duplicate_candidates)
    except RequestInputError as exc:
        audit.add("reject", "rejected", reason=exc.code)
        return Outcome(
            "rejected",
            {
                "kind": kind_label(kind),
                "run_id": run_id,
                "reason_code": exc.code,
                "reason": str(exc),
            },
        )
    if kind == "access":
        return answer_access(conn, policy, exports, row, audit, run_id)
    if kind == "correct":
        return answer_correction(conn, policy, row, correction, audit, run_id)
    return answer_erasure(conn, policy, exports, row, audit, run_id, as_of)


def _check_customer(conn: Connection, policy: Policy, customer_id: int) -> None:
    o = policy.raw.orders
    known = conn.execute(
        sa.text(f"SELECT EXISTS (SELECT 1 FROM {o.sql} o WHERE o.{o.col('customer_id')} = :c)"),
        {"c": customer_id},
    ).scalar()
    if not known:
        raise RequestInputError(
            "unknown_customer",
            f"no order of customer {customer_id} is held; check customer_id in {REQUESTS_TABLE}",
        )


def _uncovered_orders_sql(policy: Policy) -> str:
    """Whether the customer holds an order the erasure :earlier does not wait on."""
    o = policy.raw.orders
    order_id = f"o.{o.col('order_id')}"
    return f"""
    SELECT EXISTS (
        SELECT 1 FROM {o.sql} o
        WHERE o.{o.col("customer_id")} = :customer_id AND o.{o.col("purged_at")} IS NULL
          AND NOT EXISTS (SELECT 1 FROM lifecycle.pending_erasures p
                          WHERE p.request_id = :earlier AND p.order_id = {order_id}
                            AND p.erased_at IS NULL))
    """


def _check_duplicate(conn: Connection, policy: Policy, row: dict, candidates: list[int]) -> None:
    """Rejects a request an earlier open one answers. An erasure still waiting answers only the
    orders it waits on: a customer who erases again after placing an order since is answered
    (it was rejected, and the new order kept its values for good)."""
    if not candidates:
        return
    earlier = conn.execute(_FIRST_NOT_REJECTED, {"ids": candidates}).one_or_none()
    if earlier is not None and row["kind"] == "erase" and earlier.status == "partly_done":
        uncovered = sa.text(_uncovered_orders_sql(policy))
        params = {"customer_id": row["customer_id"], "earlier": earlier.request_id}
        if conn.execute(uncovered, params).scalar():
            return
    if earlier is not None:
        raise RequestInputError(
            "duplicate",
            f"same customer, kind and payload as request {earlier.request_id}, which was still open "
            f"when this one arrived (now {earlier.status}); that request answers it",
        )
