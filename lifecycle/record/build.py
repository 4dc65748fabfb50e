"""The record of processing: every fact from the policy, every piece of evidence from the report.

Nothing in it is typed twice: categories are the policy's personal columns, recipients its
carriers and allowed fields, retention its rules, measures what the project enforces (roles,
row-level security, erasure, the checks with the sentences the UI shows), and the evidence of the
period comes from the compliance report's figures (lifecycle/report/build.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from lifecycle.policy import Policy
from lifecycle.report.build import Report, plural


class RecordError(ValueError):
    """The policy cannot give a record; the message names the section and the fix."""


@dataclass(frozen=True)
class Claim:
    """One statement of the record with the evidence of the period beside it (empty when none applies)."""

    topic: str
    claim: str
    evidence: str = ""


@dataclass
class Record:
    """The record as rendered (lifecycle/record/render.py)."""

    generated_at: datetime
    period: str
    controller: str
    contact: str
    policy: str
    purposes: list[Claim]
    categories: list[Claim]
    recipients: list[Claim]
    retention: list[Claim]
    measures: list[Claim]

    def as_dict(self) -> dict:
        data = asdict(self)
        data["generated_at"] = self.generated_at.isoformat()
        return data


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def _checks(report: Report, names: list[str]) -> str:
    passed = sum(report.checks.get(n, {}).get("passed", 0) for n in names)
    failed = sum(report.checks.get(n, {}).get("failed", 0) for n in names)
    if not passed and not failed:
        return "not evaluated in the period"
    return f"{passed} evaluations passed, {failed} failed in the period"


def build_record(policy: Policy, report: Report) -> Record:
    """The record for `policy`, with the evidence of `report`'s period."""
    if policy.controller is None:
        raise RecordError(
            f"{policy.path}: controller: missing; add the section with name, contact and purposes "
            "(docs/compliance.md, 'Record of processing')"
        )
    c, r, raw = policy.controller, policy.retention, policy.raw
    succeeded = sum(n.succeeded for n in report.nights if n.run_id)
    cleared = sum(d.purged for d in report.days)
    nights = report.nights_line()[1]
    req = report.requests
    sentences = report.check_sentences
    guard = sorted(
        n for n in sentences if n not in {"no_overdue_personal_data", "ledger_chain_intact"}
    )
    measures = [
        Claim(
            "Analyst role",
            "The role lifecycle_analyst reads the published schema `analytics` and is refused every "
            "personal raw column.",
            _checks(report, ["analyst_cannot_read_personal_columns"]),
        ),
        Claim(
            "Carrier roles",
            "Each carrier role sees only its own undelivered orders under row-level security, and only "
            "the granted columns.",
            _checks(report, ["carrier_roles_see_only_their_own_rows"]),
        ),
        Claim(
            "Erasure",
            f"Cleared values leave the data files by `{r.physical_erasure}`, waiting at most "
            f"{r.erasure_lock_timeout_seconds} s for locks and otherwise staying pending for the next night.",
            "every cleared value rewritten"
            if report.pending_erasure == ()
            else f"{sum(p.changes for p in report.pending_erasure or ())} changes pending erasure",
        ),
        Claim(
            "Published figures",
            f"Every published row covers at least {policy.analytics.min_customers_per_cell} customers.",
            _checks(report, ["published_cells_cover_k_customers"]),
        ),
        *(Claim(f"Check {name}", sentences[name], _checks(report, [name])) for name in guard),
        Claim(
            "Audit trail",
            "Every ledger row is hash-chained and anchored in the run history each night.",
            next((t for ok, t in report.verdict() if t.startswith("The audit trail")), ""),
        ),
    ]
    return Record(
        generated_at=report.generated_at,
        period=f"{report.since.date()} to {report.generated_at.date()} (UTC)",
        controller=c.name,
        contact=c.contact,
        policy=f"{policy.version} (sha256 {policy.short_hash})",
        purposes=[
            Claim(p.name, f"{p.description} (legal basis: {p.legal_basis.replace('_', ' ')})")
            for p in c.purposes
        ],
        categories=[
            Claim(table.table, ", ".join(table.personal_columns) or "no personal column")
            for table in (raw.orders, raw.order_items, raw.after_sales_cases)
        ],
        recipients=[
            Claim(
                f"carrier {name}",
                f"receives {', '.join(policy.logistics.fields)} (with order id and carrier) of its own "
                f"orders awaiting delivery, by "
                + " and ".join(
                    w
                    for w, on in (("its database role", carrier.role), ("a CSV file", carrier.csv))
                    if on
                ),
                _checks(
                    report,
                    ["handoff_has_only_allowed_columns", "no_handoff_row_for_finished_orders"],
                ),
            )
            for name, carrier in sorted(policy.logistics.carriers.items())
        ],
        retention=[
            Claim(
                "delivered orders",
                f"personal fields cleared {_days(r.after_sales_window_days)} after delivery or after the "
                "last after-sales case closes (an open case keeps them)",
                f"{cleared:,} orders cleared in the period; {plural(succeeded, 'successful nightly run')}. "
                f"{nights}",
            ),
            Claim(
                "cancelled orders",
                f"cleared {_days(r.cancelled_retention_days)} after cancellation",
            ),
            Claim(
                "unpaid orders", f"cleared {_days(r.abandoned_after_days)} after they were placed"
            ),
            Claim(
                "access exports",
                f"deleted {_days(policy.requests.export_retention_days)} after they were written",
            ),
            Claim(
                "customers' requests",
                f"answered within {_days(policy.requests.response_deadline_days)}",
                "no request table"
                if req is None
                else f"{req.answered} answered in the period, {req.answered_late} after the deadline; "
                f"{req.overdue_now} overdue now",
            ),
            Claim(
                "run history",
                f"runs, their events and compute logs deleted after {_days(policy.run_history.keep_days)}",
            ),
        ],
        measures=measures,
    )
