"""The leak guard on real PostgreSQL: what someone else plants in analytics is caught, named by table
and column, and never printed; the project's own tables pass."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from assets.guard import GUARD_CHECKS
from lifecycle import synthetic
from lifecycle.checks import CheckResult
from lifecycle.guard import (
    cells,
    fingerprints,
    gx,
    names,
    patterns,
    provenance,
    raw_values,
    values,
    zone,
)
from lifecycle.guard.key import GuardKey
from lifecycle.guard.terminal import findings_table, status_line
from lifecycle.guard.tokens import normalise
from lifecycle.sales import daily, planning
from tests.conftest import AS_OF
from tests.shop import PERSONAL, add_case, add_delivered

KEY = GuardKey(b"test-guard-key-not-for-production")
DAY = timedelta(days=1)
# A second and third customer, with phones in other national formats and a name in Chinese.
OTHERS = [
    dict(
        receiver_name="王芳",
        receiver_phone="(212) 555-0123",
        receiver_email="li.na@example.org",
        receiver_address="北京街d座",
        receiver_postcode="100010",
        payment_ref="PAY-0001-0002",
    ),
    dict(
        receiver_name="Jacob Jackson",
        receiver_phone="030 1234567",
        receiver_email="jj@example.net",
        receiver_address="12751 Anna Viaduct Suite 434",
        receiver_postcode="10115",
        payment_ref="PAY-0003-0004",
    ),
]


@pytest.fixture
def shop(engine):
    """Three delivered orders inside their window (so still holding personal data) and a case note."""
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 2 * DAY)
        for order_id, fields in enumerate(OTHERS, start=2):
            add_delivered(conn, order_id, AS_OF - 2 * DAY, customer_id=order_id, **fields)
        add_case(conn, 10, 1, AS_OF - DAY, note="parcel left with the neighbour at number 12")
    return engine


@pytest.fixture
def plant(engine):
    """Creates a table in analytics as an analyst's notebook would; dropped after the test."""
    planted: list[str] = []

    def create(name: str, **columns: list) -> str:
        names = list(columns)
        rows = list(zip(*columns.values(), strict=True))
        values = ", ".join(
            "(" + ", ".join(f":v{i}_{j}" for j in range(len(names))) + ")" for i in range(len(rows))
        )
        params = {f"v{i}_{j}": value for i, row in enumerate(rows) for j, value in enumerate(row)}
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"CREATE TABLE analytics.{name} AS SELECT * FROM (VALUES {values}) AS v({', '.join(names)})"
                ),
                params,
            )
        planted.append(name)
        return name

    yield create
    with engine.begin() as conn:
        for name in reversed(planted):
            conn.execute(sa.text(f"DROP TABLE IF EXISTS analytics.{name} CASCADE"))


def shown(*reports: CheckResult) -> str:
    """Everything the guard would show anyone: terminal lines, tables, descriptions, metadata."""
    findings = [f for r in reports for f in r.findings]
    return "\n".join(
        [findings_table([("check", r) for r in reports]), *map(repr, findings)]
        + [
            f"{status_line('check', r)} {r.description()} {r.markdown()} {r.metadata()}"
            for r in reports
        ]
    )


def assert_no_value_shown(text: str, *values: str) -> None:
    """Neither the value, nor its normal form, nor (for a phone) its digits appear."""
    lowered = text.lower()
    for value in values:
        assert value.lower() not in lowered and normalise(value) not in lowered
        digits = re.sub("[^0-9]", "", value)
        if len(digits) >= 7:
            assert digits not in text


def found(report: CheckResult) -> set[tuple[str, str, str, int]]:
    return {(f.table, f.column, f.kind, f.count) for f in report.findings}


# ---------------------------------------------------------------- each kind of leak


def test_an_email_planted_in_a_new_table_is_caught_by_pattern_and_fingerprint(shop, plant, policy):
    plant("adhoc_export", region=["SH", "BJ"], contact=[PERSONAL["receiver_email"], None])
    patterns = values.personal_value_patterns(shop, KEY)
    prints = raw_values.raw_values_in_zone(shop, policy, KEY)
    assert ("analytics.adhoc_export", "contact", "email", 1) in found(patterns)
    assert ("analytics.adhoc_export", "contact", "raw_value", 1) in found(prints)
    [match] = [f for f in prints.findings if f.column == "contact"]
    assert "shop.orders.receiver_email" in match.detail
    assert [re.fullmatch(r"[0-9]+ chars #[0-9a-f]{6}", s) is not None for s in match.samples] == [
        True
    ]
    assert_no_value_shown(shown(patterns, prints), PERSONAL["receiver_email"], "wang fang example")


@pytest.mark.parametrize(
    "raw_index, written",
    [
        (None, "138-0013-8000"),  # raw "+86 138 0013 8000", written nationally with dashes
        (None, "13800138000"),  # bare
        (0, "+1 212 555 0123"),  # raw "(212) 555-0123", written internationally
        (1, "+49 30 1234567"),  # raw "030 1234567" (Berlin), written internationally
    ],
)
def test_a_phone_written_in_another_format_than_the_raw_one_is_caught(
    shop, plant, policy, raw_index, written
):
    plant("adhoc_callbacks", reason=["late parcel"], callback=[written])
    prints = raw_values.raw_values_in_zone(shop, policy, KEY)
    patterns = values.personal_value_patterns(shop, KEY)
    assert ("analytics.adhoc_callbacks", "callback", "raw_phone", 1) in found(prints)
    assert ("analytics.adhoc_callbacks", "callback", "phone", 1) in found(patterns)
    raw = PERSONAL["receiver_phone"] if raw_index is None else OTHERS[raw_index]["receiver_phone"]
    assert_no_value_shown(shown(prints, patterns), written, raw)


def test_a_value_left_in_a_cleared_order_is_still_compared(shop, plant, policy):
    """The raw zone's orders are read as two halves (in flight, and cleared yet holding a value,
    each through its partial index): a value a faulty writer left in a cleared order is still a
    raw value, and one of an order in flight still is too."""
    with shop.begin() as conn:
        conn.execute(sa.text("UPDATE shop.orders SET purged_at = now() WHERE order_id = 2"))
    plant(
        "adhoc_contacts",
        email=[OTHERS[0]["receiver_email"], OTHERS[1]["receiver_email"], "nobody@example.com"],
    )
    prints = raw_values.raw_values_in_zone(shop, policy, KEY)
    assert ("analytics.adhoc_contacts", "email", "raw_value", 2) in found(prints)
    [finding] = [f for f in prints.findings if f.table == "analytics.adhoc_contacts"]
    assert finding.detail.endswith("shop.orders.receiver_email")
    assert_no_value_shown(shown(prints), *(o["receiver_email"] for o in OTHERS))


def test_a_receiver_name_inside_a_free_text_comment_is_caught(shop, plant, policy):
    plant(
        "adhoc_feedback",
        comment=[
            "Left at the door, signed by Wang Fang.",
            "客户王芳来电要求退货",
            "Fast delivery, thanks!",
        ],
    )
    prints = raw_values.raw_values_in_zone(shop, policy, KEY)
    [finding] = prints.findings
    assert (finding.table, finding.column, finding.kind, finding.count) == (
        "analytics.adhoc_feedback",
        "comment",
        "raw_value_in_text",
        2,
    )
    assert finding.detail.endswith("shop.orders.receiver_name")
    assert_no_value_shown(shown(prints), "Wang Fang", "王芳")


def test_a_product_line_is_compared_whole_and_an_analysts_text_word_by_word(shop, plant, policy):
    """A receiver whose one-word name (or city) is also a word of a catalogue's product line, as
    Olist's `artigos_de_natal` (Christmas goods) and the city Natal: the planning tables' product
    line failed the night word by word. It is compared whole now; the same text in an analyst's
    column is still caught word by word, and a product line equal to the value whole is too."""
    with shop.begin() as conn:
        add_delivered(
            conn, 5, AS_OF - 2 * DAY, customer_id=5, **{**OTHERS[1], "receiver_name": "Natal"}
        )
        for line in ("artigos_de_natal", "NATAL"):
            conn.execute(
                sa.text("""INSERT INTO analytics.weekly_demand
                    VALUES ('2026-05-25', 'product_line', :line, 'OTHER', 'OTHER', 5, 5, 50, 5)"""),
                {"line": line},
            )
    plant("adhoc_lines", line=["artigos_de_natal", "perfumaria"])
    prints = raw_values.raw_values_in_zone(shop, policy, KEY)
    assert found(prints) == {
        ("analytics.weekly_demand", "product_line", "raw_value", 1),
        ("analytics.adhoc_lines", "line", "raw_value_in_text", 1),
    }
    assert_no_value_shown(shown(prints), "Natal")


def test_a_name_written_in_capitals_beyond_ascii_is_caught(shop, plant, policy):
    """Catalogues write descriptions in capitals. Only ASCII was folded, so `JOSÉ MÜLLER` kept
    É and Ü and met neither the raw `José Müller` nor its small letters; Cyrillic alike."""
    with shop.begin() as conn:
        conn.execute(
            sa.text("UPDATE shop.orders SET receiver_name = :n WHERE order_id = 1"),
            {"n": "José Müller"},
        )
        conn.execute(
            sa.text("UPDATE shop.orders SET receiver_name = :n WHERE order_id = 2"),
            {"n": "ПЁТР ИВАНОВ"},
        )
    plant(
        "adhoc_descriptions",
        description=[
            "GIFT TAG JOSÉ MÜLLER",
            "gift tag josé müller",
            "открытка для Пётр Иванов",
            "GIFT TAG",
        ],
    )
    prints = raw_values.raw_values_in_zone(shop, policy, KEY)
    assert found(prints) == {
        ("analytics.adhoc_descriptions", "description", "raw_value_in_text", 3)
    }
    assert_no_value_shown(shown(prints), "José Müller", "Пётр Иванов")


def test_a_luhn_valid_card_number_is_caught_and_an_invalid_one_is_not(shop, plant):
    plant(
        "adhoc_payments",
        note=[
            "paid with 4111 1111 1111 1111",
            "ref 4111 1111 1111 1112",
            "card 5500-0000-0000-0004",
            "order 123456789012345",
        ],
    )
    patterns = values.personal_value_patterns(shop, KEY)
    assert ("analytics.adhoc_payments", "note", "card_number", 2) in found(patterns)
    assert_no_value_shown(shown(patterns), "4111 1111 1111 1111", "5500-0000-0000-0004")


def test_a_sentence_with_a_name_and_a_phone_is_caught_for_both(shop, plant, policy):
    plant("adhoc_notes", note=["Please call Wang Fang on 138.0013.8000 before noon"])
    prints = raw_values.raw_values_in_zone(shop, policy, KEY)
    patterns = values.personal_value_patterns(shop, KEY)
    assert {
        ("analytics.adhoc_notes", "note", "raw_value_in_text", 1),
        ("analytics.adhoc_notes", "note", "raw_phone", 1),
    } <= found(prints)
    assert ("analytics.adhoc_notes", "note", "phone", 1) in found(patterns)
    assert_no_value_shown(shown(prints, patterns), "Wang Fang", "138.0013.8000")


def test_street_addresses_in_either_script_look_like_addresses(shop, plant):
    plant(
        "adhoc_routes",
        stop=[
            "17 Garden Road, Apt 3",
            "12751 Anna Viaduct Suite 434",
            "南京东路123号",
            "SKU-0042 x 3 units",
            "Route planning for 5 regions",
        ],
    )
    patterns = values.personal_value_patterns(shop, KEY)
    assert ("analytics.adhoc_routes", "stop", "street_address", 3) in found(patterns)


def test_a_view_and_a_json_column_are_inspected_too(shop, plant, policy):
    plant("adhoc_base", id=[1], payload=['{"to": "jj@example.net"}'])
    with shop.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE VIEW analytics.adhoc_view AS SELECT id, payload::jsonb AS payload "
                "FROM analytics.adhoc_base"
            )
        )
    prints = raw_values.raw_values_in_zone(shop, policy, KEY)
    patterns = values.personal_value_patterns(shop, KEY)
    assert ("analytics.adhoc_view", "payload", "raw_email", 1) in found(prints)
    assert ("analytics.adhoc_view", "payload", "email", 1) in found(patterns)


def test_a_table_named_with_spaces_and_capitals_is_checked_like_any_other(shop, policy):
    with shop.begin() as conn:
        conn.execute(sa.text('CREATE TABLE analytics."Q3 Export" ("Note {x}" text)'))
        conn.execute(
            sa.text('INSERT INTO analytics."Q3 Export" VALUES (:v)'),
            {"v": f"mail {PERSONAL['receiver_email']}"},
        )
    try:
        patterns_found = found(values.personal_value_patterns(shop, KEY))
        prints_found = found(raw_values.raw_values_in_zone(shop, policy, KEY))
    finally:
        with shop.begin() as conn:
            conn.execute(sa.text('DROP TABLE analytics."Q3 Export"'))
    assert ("analytics.Q3 Export", "Note {x}", "email", 1) in patterns_found
    assert ("analytics.Q3 Export", "Note {x}", "raw_email", 1) in prints_found


def test_great_expectations_results_hold_counts_and_never_the_values(shop, plant):
    plant("adhoc_gx", contact=[PERSONAL["receiver_email"], PERSONAL["receiver_phone"], "nothing"])
    with shop.connect() as conn:
        relation = next(r for r in zone.discover(conn) if r.name == "adhoc_gx")
    [(name, result)] = list(
        gx.results(shop, "analytics", {"adhoc_gx": values.pattern_rules(shop, relation)})
    )
    text = json.dumps(result.to_json_dict(), ensure_ascii=False)
    counts = {
        r.expectation_config.meta["kind"]: r.result.get(
            "unexpected_count", r.result.get("observed_value")
        )
        for r in result.results
    }
    assert counts == {
        "email": 1,
        "phone": 1,
        "street_address": 0,
        "card_number": 0,
        "national_id": 0,
    }
    assert_no_value_shown(text, PERSONAL["receiver_email"], PERSONAL["receiver_phone"])


def test_personal_column_names_are_caught_whatever_they_hold(shop, plant, policy):
    plant(
        "adhoc_people",
        receiver_phone=[None],
        customer_id=["7"],
        contact_email=["x"],
        sku=["SKU-1"],
        customers=["12"],
        zip_code=["0"],
    )
    report = names.personal_column_names(shop, policy)
    assert found(report) == {
        ("analytics.adhoc_people", "receiver_phone", "policy_personal_column", 0),
        ("analytics.adhoc_people", "customer_id", "customer_id_column", 1),
        ("analytics.adhoc_people", "contact_email", "email_column", 1),
        ("analytics.adhoc_people", "zip_code", "postcode_column", 1),
    }


# ---------------------------------------------------------------- a scan that cannot run


def test_a_relation_the_database_refuses_fails_with_the_reason_and_never_the_statement_or_value(
    shop, policy
):
    with shop.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE VIEW analytics.adhoc_broken AS "
                "SELECT (v::int)::text AS remark FROM (VALUES ('Wang Fang')) AS t(v)"
            )
        )
    try:
        prints = raw_values.raw_values_in_zone(shop, policy, KEY)
    finally:
        with shop.begin() as conn:
            conn.execute(sa.text("DROP VIEW analytics.adhoc_broken"))
    # One erroring relation is a finding for that relation; the rest of the zone is still compared.
    assert not prints.passed and prints.error is None
    assert [(f.table, f.column, f.kind) for f in prints.findings] == [
        ("analytics.adhoc_broken", "remark", "check_error")
    ]
    assert "22P02: InvalidTextRepresentation" in prints.description()
    assert "select" not in shown(prints).lower() and "hmac" not in shown(prints).lower()
    assert_no_value_shown(shown(prints), "Wang Fang")


# ---------------------------------------------------------------- no false positives


def test_the_projects_own_published_tables_and_harmless_numbers_pass_every_check(
    engine, policy, plant
):
    synthetic.seed_shop(engine, orders=6000, seed=11, as_of=AS_OF)
    daily.refresh(engine, policy, run_id="night-1", as_of=AS_OF)
    planning.build_product_line_summary(engine, policy, AS_OF)  # the nightly order: summary,
    planning.build_weekly_demand(engine, policy, AS_OF)  # then weekly merged against it
    plant(
        "adhoc_inventory",
        sku=["SKU-0042", "SKU-0199"],
        remark=["restock 1234567 units by 2026-06-01", "order 100042 shipped 12.50 EUR"],
        batch=["20260601120000", "0.99"],
    )
    with engine.connect() as conn:
        published = conn.execute(
            sa.text("SELECT count(*) FROM analytics.sales_volume_daily")
        ).scalar()
    reports = {check.name: check.scan(engine, policy, KEY) for check in GUARD_CHECKS}
    assert published > 0
    assert {name: (r.error, r.findings) for name, r in reports.items()} == {
        name: (None, []) for name in reports
    }
    prints = reports["no_raw_values_in_analytics"]
    # daily, weekly, summary, the DP release and its product lines' sums, adhoc_inventory
    assert prints.scanned["relations"] == 6 and prints.scanned["distinct_tokens"] > 0


# ---------------------------------------------------------------- small cells


def test_a_published_row_under_k_customers_fails_and_an_empty_week_does_not(shop, policy):
    with shop.begin() as conn:
        conn.execute(
            sa.text("""
            INSERT INTO analytics.sales_volume_daily VALUES
                ('2026-05-30', 'SKU-1', 'SH', 9, 9, 90, 5), ('2026-05-30', 'SKU-2', 'SH', 4, 4, 40, 4);
            INSERT INTO analytics.weekly_demand VALUES
                ('2026-05-18', 'sku_region', 'ALL', 'SKU-1', 'SH', 0, 0, 0, 0);
        """)
        )
    report = cells.small_cells(shop, policy)
    assert found(report) == {("analytics.sales_volume_daily", "customers", "small_cell", 1)}
    assert "k=5" in report.findings[0].detail


def test_pattern_sql_has_no_colon_a_driver_could_take_for_a_parameter():
    for kind in patterns.KINDS:
        assert re.search(r"(?<!:):(?!:)\w", patterns.matches_sql(kind, "x")) is None, kind


def looks_like(engine, kind: str, value: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(f"SELECT {patterns.matches_sql(kind, 'CAST(:v AS text)')}"), {"v": value}
        ).scalar()


@pytest.mark.parametrize(
    "value",
    [
        "+86-138-0013-8000",
        "138 0013 8000",
        "13800138000",
        "+1 (212) 555-0123",
        "212.555.0123",
        "(212)555-0123",
        "0044 20 7946 0958",
        "+44 20 7946 0958",
        "030 1234567",
        "06 12 34 56 78",
        "call me: 020 7946 0958 today",
    ],
)
def test_phones_in_international_and_local_formats_look_like_phones(engine, value):
    assert looks_like(engine, "phone", value)


@pytest.mark.parametrize(
    "value",
    [
        "SKU-0042",
        "1234567",
        "100042",
        "20260601120000",
        "2026-06-01",
        "01.02.2026",
        "01-02-2026",
        "2026-06-01 12:00:00+00",
        "12.50",
        "1,234,567.00",
        "192.168.100.200",
        "550e8400-e29b-41d4-a716-446655440000",
    ],
)
def test_codes_numbers_and_dates_are_not_phones(engine, value):
    assert not looks_like(engine, "phone", value)


def test_the_sql_fold_agrees_with_the_logs_fold(engine):
    """A raw value's folded form is made in SQL, a log token's in Python: the same function."""
    texts = ["3 001 re hashed", "in 1 83s", "a1 2b c3", "flat 12 34 56 main st 7", "00 0 x 0"]
    with engine.connect() as conn:
        folded = conn.execute(
            sa.text(
                f"SELECT {fingerprints._FOLDED.format(norm='t')} FROM unnest(CAST(:t AS text[])) t"
            ),
            {"t": texts},
        ).scalars()
        assert list(folded) == [provenance.fold(t) for t in texts]


def test_the_sql_luhn_check_agrees_with_the_reference(engine):
    def luhn(digits: str) -> bool:
        total = sum(
            d // 10 + d % 10 for d in (int(c) * (1 + i % 2) for i, c in enumerate(reversed(digits)))
        )
        return total % 10 == 0

    numbers = [str(n) for n in range(4111111111111100, 4111111111111120)] + [
        "378282246310005",
        "6011111111111117",
    ]
    with engine.connect() as conn:
        got = [
            conn.execute(sa.text(f"SELECT {patterns.luhn_sql(':d')}"), {"d": n}).scalar()
            for n in numbers
        ]
    assert got == [luhn(n) for n in numbers] and sum(got) >= 3
