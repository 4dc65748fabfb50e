"""No personal value in any message: a database error that quotes one is reported by SQLSTATE and
names only, on every route it can take (stdout, stderr, the Dagster event log, compute logs).

Each test plants a value PostgreSQL will quote in its primary message ("invalid input syntax for
type bigint: "139-8765-4321"") and runs the real command, then looks for the value everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from lifecycle import db
from tests.db.test_requests import add_request, request_row
from tests.shop import add_delivered, add_order, leaked
from tests.test_cli import lifecycle

PHONE = "139-8765-4321"  # not a number: a cast to bigint fails and PostgreSQL quotes it
NOW = datetime.now(UTC)
DAY = timedelta(days=1)


def places_holding(value: str, result, dagster_home: Path, storage_url: str) -> list[str]:
    """Where `value` turned up: the command's output, any file under DAGSTER_HOME, the run history."""
    found = [
        name
        for name, text in (("stdout", result.stdout), ("stderr", result.stderr))
        if leaked(text, [value])
    ]
    for path in dagster_home.rglob("*") if dagster_home.exists() else []:
        if path.is_file() and leaked(path.read_bytes().decode("utf-8", "replace"), [value]):
            found.append(str(path.relative_to(dagster_home)))
    engine = db.create_engine(storage_url)
    try:
        with engine.connect() as conn:
            events = conn.execute(
                sa.text("SELECT count(*) FROM event_logs WHERE position(:v in event) > 0"),
                {"v": value},
            ).scalar()
            if events:
                found.append(f"event_logs ({events} events)")
    finally:
        engine.dispose()
    return found


def run(*args: str, settings, tmp_path, **env):
    """The command as a user runs it, its run history in the test's own history database."""
    return lifecycle(
        *args,
        url=sa.make_url(settings.database_url),
        tmp_path=tmp_path,
        DAGSTER_HOME=str(settings.dagster_home),
        LIFECYCLE_DAGSTER_STORAGE_URL=settings.dagster_storage_url,
        LIFECYCLE_EXPORT_DIR=str(tmp_path / "exports"),
        LIFECYCLE_GUARD_SECRET="a-test-key-of-enough-length",
        **env,
    )


@pytest.fixture
def failing_shop_trigger(engine):
    """A shop trigger that casts the old phone to bigint on every update: PostgreSQL quotes it."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("""
            CREATE FUNCTION shop.phone_as_number() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM OLD.receiver_phone::bigint; RETURN NEW; END $$;
            CREATE TRIGGER phone_as_number BEFORE UPDATE ON shop.orders
                FOR EACH ROW EXECUTE FUNCTION shop.phone_as_number();
        """)
        )
    yield
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "DROP TRIGGER phone_as_number ON shop.orders; DROP FUNCTION shop.phone_as_number()"
            )
        )


def test_a_shop_trigger_failing_in_the_purge_names_the_sqlstate_not_the_value(
    engine, dagster_settings, tmp_path, failing_shop_trigger
):
    with engine.begin() as conn:
        add_delivered(conn, 1, NOW - 100 * DAY, receiver_phone=PHONE)

    result = run("nightly", settings=dagster_settings, tmp_path=tmp_path)

    assert result.returncode == 1 and "FAILED" in result.stdout
    assert (
        places_holding(
            PHONE, result, dagster_settings.dagster_home, dagster_settings.dagster_storage_url
        )
        == []
    )
    history = db.create_engine(dagster_settings.dagster_storage_url)
    with history.connect() as conn:
        failure = conn.execute(
            sa.text("SELECT event FROM event_logs WHERE dagster_event_type = 'STEP_FAILURE'")
        ).scalar()
    history.dispose()
    assert "SQLSTATE 22P02 (InvalidTextRepresentation)" in failure


@pytest.fixture
def failing_analytics_view(engine):
    """An analytics view that casts a raw phone to bigint: reading it fails, quoting the value."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE VIEW analytics.contact_numbers AS "
                "SELECT order_id, receiver_phone::bigint::text AS contact FROM shop.orders"
            )
        )
    yield
    with engine.begin() as conn:
        conn.execute(sa.text("DROP VIEW analytics.contact_numbers"))


def test_an_analytics_view_failing_in_the_guard_names_the_sqlstate_not_the_value(
    engine, dagster_settings, tmp_path, failing_analytics_view
):
    with engine.begin() as conn:
        add_order(conn, 1, "paid", NOW - DAY, receiver_phone=PHONE, paid_at=NOW - DAY)

    guard = run("guard", "--no-run-history", settings=dagster_settings, tmp_path=tmp_path)
    nightly = run("nightly", settings=dagster_settings, tmp_path=tmp_path)

    assert guard.returncode == 1 and nightly.returncode == 1
    assert "22P02" in guard.stdout + guard.stderr
    for result in (guard, nightly):
        assert (
            places_holding(
                PHONE, result, dagster_settings.dagster_home, dagster_settings.dagster_storage_url
            )
            == []
        )


@pytest.fixture
def numeric_postcode(engine):
    """A shop whose receiver_postcode column holds numbers: a text correction into it fails."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("ALTER TABLE shop.orders ALTER receiver_postcode TYPE bigint USING NULL")
        )
    yield
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE shop.orders ALTER receiver_postcode TYPE text"))


def test_a_correction_into_a_column_of_another_type_names_the_sqlstate_not_the_value(
    engine, dagster_settings, tmp_path, numeric_postcode
):
    with engine.begin() as conn:
        add_order(
            conn, 1, "paid", NOW - DAY, customer_id=42, paid_at=NOW - DAY, receiver_postcode=None
        )
        add_request(
            conn, 100, "correct", {"fields": {"receiver_postcode": PHONE}}, received_at=NOW - DAY
        )

    result = run("requests", "run", settings=dagster_settings, tmp_path=tmp_path)

    assert (
        places_holding(
            PHONE, result, dagster_settings.dagster_home, dagster_settings.dagster_storage_url
        )
        == []
    )
    with engine.connect() as conn:
        answered = request_row(conn, 100)
    assert answered["status"] == "failed"
    assert answered["result"]["reason_code"] == "database_error"
    assert answered["result"]["sqlstate"] == "22P02"
    assert not leaked(str(answered["result"]), [PHONE])
    # Still open: the website's payload is kept whole for the retry (docs/requests.md, `failed`).
    assert answered["payload"] == {"fields": {"receiver_postcode": PHONE}}


@pytest.fixture
def raising_analytics_view(engine):
    """An analytics view whose function raises with the raw phone in its message (SQLSTATE P0001)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("""
            CREATE FUNCTION analytics.checked_contact(phone text) RETURNS text LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'not a phone number: %', phone; END $$;
            CREATE VIEW analytics.checked_contacts AS
                SELECT order_id, analytics.checked_contact(receiver_phone) AS contact FROM shop.orders;
        """)
        )
    yield
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "DROP VIEW analytics.checked_contacts; DROP FUNCTION analytics.checked_contact(text)"
            )
        )


def test_an_analytics_view_raising_with_a_value_names_the_sqlstate_not_the_value(
    engine, dagster_settings, tmp_path, raising_analytics_view
):
    with engine.begin() as conn:
        add_order(conn, 1, "paid", NOW - DAY, receiver_phone=PHONE, paid_at=NOW - DAY)

    guard = run("guard", "--no-run-history", settings=dagster_settings, tmp_path=tmp_path)

    assert guard.returncode == 1, guard.stderr[-2000:]
    assert "P0001" in guard.stdout, guard.stdout
    assert (
        places_holding(
            PHONE, guard, dagster_settings.dagster_home, dagster_settings.dagster_storage_url
        )
        == []
    )
