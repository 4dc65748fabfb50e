"""An audited exception: a finding the policy accepts, with a reason and an expiry, is still counted
and shown, passes until the expiry and fails again the day after."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from assets.guard import GUARD_CHECKS
from lifecycle.guard.key import GuardKey
from lifecycle.policy import PolicyError, load_policy
from lifecycle.settings import PROJECT_DIR

KEY = GuardKey(b"test-guard-key-not-for-production")
EXPIRES = date(2026, 12, 31)
ACCEPT = f"""
guard:
  accepted_findings:
    - table: analytics.adhoc_dial_codes
      column: code
      kind: phone
      reason: "switchboard extension codes of the warehouse, not customers' (ticket OPS-1234)"
      expires: {EXPIRES.isoformat()}
"""
PATTERNS = next(c for c in GUARD_CHECKS if c.name == "no_personal_patterns_in_analytics")


@pytest.fixture
def dial_codes(engine):
    """A column of codes the phone pattern takes for phone numbers."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE analytics.adhoc_dial_codes AS "
                "SELECT * FROM (VALUES ('(212) 555-0123'), ('(212) 555-0199')) AS t(code)"
            )
        )
    yield engine
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE analytics.adhoc_dial_codes"))


def accepting_policy(policy_file):
    text = (PROJECT_DIR / "policy.yaml").read_text() + ACCEPT
    return load_policy(policy_file(text))


def test_an_accepted_finding_passes_until_its_expiry_and_is_still_shown(dial_codes, policy_file):
    policy = accepting_policy(policy_file)
    result = PATTERNS.run(dial_codes, policy, KEY, None, EXPIRES)
    assert result.passed and result.findings == []
    assert [(f.table, f.column, f.kind, f.count) for f in result.accepted] == [
        ("analytics.adhoc_dial_codes", "code", "phone", 2)
    ]
    metadata = result.metadata()
    assert metadata["accepted_count"] == 1 and metadata["accepted_rows"] == 2
    assert metadata["accepted_on"] == ["analytics.adhoc_dial_codes.code"]
    assert "phone (accepted)" in result.markdown() and "OPS-1234" in result.markdown()
    assert "1 accepted finding(s)" in result.description()
    assert "555" not in result.markdown() + result.description()


def test_an_accepted_finding_fails_again_the_day_after_its_expiry(dial_codes, policy_file):
    policy = accepting_policy(policy_file)
    result = PATTERNS.run(dial_codes, policy, KEY, None, EXPIRES + timedelta(days=1))
    assert not result.passed and result.accepted == []
    [finding] = result.findings
    assert (finding.table, finding.kind, finding.count) == (
        "analytics.adhoc_dial_codes",
        "phone",
        2,
    )
    assert f"expired on {EXPIRES}" in finding.detail


def test_without_an_acceptance_the_same_finding_fails(dial_codes, policy):
    result = PATTERNS.run(dial_codes, policy, KEY, None, EXPIRES)
    assert not result.passed and [f.kind for f in result.findings] == ["phone"]


@pytest.mark.parametrize(
    "entry, problem",
    [
        ("kind: check_error\n      reason: the view is broken, ignore it", "cannot be accepted"),
        ("kind: phone\n      reason: ok", "guard.accepted_findings.0.reason"),
        (
            "kind: phone\n      reason: codes, not phones at all",
            "guard.accepted_findings.0.expires",
        ),
    ],
)
def test_an_acceptance_needs_an_acceptable_kind_a_reason_and_an_expiry(policy_file, entry, problem):
    text = (PROJECT_DIR / "policy.yaml").read_text() + (
        "\nguard:\n  accepted_findings:\n    - table: analytics.t\n      column: c\n      "
        + entry
        + ("\n      expires: 2026-12-31\n" if "expires" not in problem else "\n")
    )
    with pytest.raises(PolicyError) as refused:
        load_policy(policy_file(text))
    assert problem in "\n".join(refused.value.problems)
