"""A report is checked for raw values before it is written: the refusal names the kind and the
line numbers, never the value; the policy's time zone quoted as a name is not a customer's city,
the same words written as words are (docs/guard.md, What it does not catch)."""

from datetime import UTC, datetime, timedelta

import yaml

from lifecycle.guard.documents import raw_values_in_document, refusal
from lifecycle.guard.key import GuardKey
from lifecycle.policy import load_policy
from lifecycle.settings import PROJECT_DIR
from tests.shop import add_delivered

KEY = GuardKey(b"test-guard-key-not-for-production")
NOW = datetime.now(UTC)


def brazil(tmp_path):
    policy = yaml.safe_load((PROJECT_DIR / "policy.yaml").read_text())
    policy["analytics"]["timezone"] = "America/Sao_Paulo"
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return load_policy(path)


def test_a_refusal_names_the_kind_and_every_line_never_the_value(engine, tmp_path):
    with engine.begin() as conn:
        add_delivered(conn, 1, NOW - timedelta(days=2), receiver_name="Maria Sales")
    text = "# Report\nclean line\nparcel for Maria Sales\nclean\nagain maria sales here\n"
    checked = raw_values_in_document(engine, brazil(tmp_path), KEY, "report.md", text)
    message = refusal("report.md", checked)
    assert "raw_value_in_text on lines 3, 5" in message
    assert "Maria" not in message and "Sales" not in message


def test_the_policys_time_zone_is_not_the_city_it_names(engine, tmp_path):
    with engine.begin() as conn:
        add_delivered(conn, 1, NOW - timedelta(days=2), receiver_address="Sao Paulo")
    policy = brazil(tmp_path)
    quoted = "nights in America/Sao_Paulo\n"
    assert raw_values_in_document(engine, policy, KEY, "report.md", quoted).passed
    leaked = "nights in America/Sao_Paulo\nparcel to Sao Paulo\n"
    checked = raw_values_in_document(engine, policy, KEY, "report.md", leaked)
    assert "(raw_value_in_text on line 2)" in refusal("report.md", checked)
