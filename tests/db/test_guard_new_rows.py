"""In the nightly a changed analytics table is read by the pattern scan only for the rows written
since its last clean scan (lifecycle.guard.new_rows), and whole whenever that would not be sound:
new columns, a table new to the zone, findings, new rules."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from lifecycle.guard import changes, new_rows, values
from lifecycle.guard.reader import reader_engine
from tests.conftest import AS_OF
from tests.db.test_guard_incremental import DAY, KEY, WEEK, write


@pytest.fixture
def notes(engine):
    """An analyst's table of 200 clean notes, scanned clean once by the nightly."""
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE analytics.adhoc_notes (id int, note text)"))
    write(
        engine,
        "analytics.adhoc_notes",
        "INSERT INTO analytics.adhoc_notes "
        "SELECT g, 'restock blue kettles, batch ' || g FROM generate_series(1, 200) g",
    )
    first = scan(engine, AS_OF)
    assert first.result.passed and first.result.scanned["full_scan"] is True
    yield engine
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS analytics.adhoc_notes"))


class Scan:
    """One night's pattern scan and the counting statements the reader ran for it."""

    def __init__(self, result, statements):
        self.result = result
        self.statements = statements

    def read_of(self, relation: str) -> str:
        """The one counting statement that read `relation`."""
        [statement] = [s for s in self.statements if f'"{relation}"' in s]
        return statement


def scan(engine, at) -> Scan:
    """The nightly's pattern scan on the night `at`, watching the reader's statements."""
    reader = reader_engine(engine)
    statements: list[str] = []

    def watch(conn, cursor, statement, *args):
        if statement.lstrip().startswith("SELECT count(*) FILTER"):
            statements.append(statement)

    sa.event.listen(reader, "before_cursor_execute", watch)
    try:
        with changes.incremental(at, WEEK):
            result = values.personal_value_patterns(engine, KEY, reader)
    finally:
        sa.event.remove(reader, "before_cursor_execute", watch)
        reader.dispose()
    return Scan(result, statements)


def test_a_changed_table_is_read_for_its_new_rows_and_a_value_planted_in_them_caught(notes):
    write(
        notes,
        "analytics.adhoc_notes",
        "INSERT INTO analytics.adhoc_notes VALUES (201, 'ring +44 20 7946 0958 after six')",
    )
    second = scan(notes, AS_OF + DAY)
    assert "xmin" in second.read_of("adhoc_notes")
    assert second.result.scanned["relations_read_new_rows_only"] == 1
    assert [(f.table, f.kind, f.count) for f in second.result.findings] == [
        ("analytics.adhoc_notes", "phone", 1)
    ]
    # A table with findings is read whole the next night, and every night until it is fixed.
    third = scan(notes, AS_OF + 2 * DAY)
    assert "xmin" not in third.read_of("adhoc_notes")
    assert not third.result.passed


def test_an_old_row_updated_to_hold_a_value_is_a_new_row(notes):
    write(
        notes,
        "analytics.adhoc_notes",
        "UPDATE analytics.adhoc_notes SET note = 'mail jan@example.org' WHERE id = 7",
    )
    second = scan(notes, AS_OF + DAY)
    assert "xmin" in second.read_of("adhoc_notes")
    assert [(f.kind, f.count) for f in second.result.findings] == [("email", 1)]


def test_a_clean_night_moves_the_position_on(notes):
    write(notes, "analytics.adhoc_notes", "INSERT INTO analytics.adhoc_notes VALUES (201, 'ok')")
    assert scan(notes, AS_OF + DAY).result.passed
    write(
        notes,
        "analytics.adhoc_notes",
        "INSERT INTO analytics.adhoc_notes VALUES (202, 'call 020 7946 0958')",
    )
    third = scan(notes, AS_OF + 2 * DAY)
    assert "xmin" in third.read_of("adhoc_notes")
    assert [(f.kind, f.count) for f in third.result.findings] == [("phone", 1)]


def test_a_column_added_with_a_default_reads_the_table_whole(notes):
    """A default fills the old rows without writing them (their xmin stays): the new columns
    change the table's shape, so every row is read."""
    write(
        notes,
        "analytics.adhoc_notes",
        "ALTER TABLE analytics.adhoc_notes ADD COLUMN contact text DEFAULT 'jan@example.org'; "
        "INSERT INTO analytics.adhoc_notes (id, note) VALUES (201, 'restock')",
    )
    second = scan(notes, AS_OF + DAY)
    assert "xmin" not in second.read_of("adhoc_notes")
    assert second.result.scanned["relations_read_new_rows_only"] == 0
    assert [(f.column, f.kind, f.count) for f in second.result.findings] == [
        ("contact", "email", 201)
    ]


def test_a_table_moved_into_the_zone_is_read_whole(notes):
    """Rows written long before the table joined analytics were never scanned: no position."""
    with notes.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE public.adhoc_moved AS SELECT 'mail jan@example.org'::text AS note"
            )
        )
    scan(notes, AS_OF + DAY)
    with notes.begin() as conn:
        conn.execute(sa.text("ALTER TABLE public.adhoc_moved SET SCHEMA analytics"))
        conn.execute(sa.text("GRANT SELECT ON analytics.adhoc_moved TO lifecycle_analyst"))
    try:
        second = scan(notes, AS_OF + 2 * DAY)
        assert "xmin" not in second.read_of("adhoc_moved")
        assert [(f.table, f.kind) for f in second.result.findings] == [
            ("analytics.adhoc_moved", "email")
        ]
    finally:
        with notes.begin() as conn:
            conn.execute(sa.text("DROP TABLE analytics.adhoc_moved"))


def test_new_rules_read_every_row_again(notes):
    """What the rows are compared with is part of a table's shape: rules changed, no position."""
    write(notes, "analytics.adhoc_notes", "INSERT INTO analytics.adhoc_notes VALUES (201, 'ok')")
    tonight = changes.Plan(values.SCAN, changes.Night(AS_OF + DAY, WEEK), full=False)
    with notes.connect() as conn:
        same = new_rows.plan(conn, notes, values.SCAN, tonight, ["adhoc_notes"], values.RULES)
        other = new_rows.plan(conn, notes, values.SCAN, tonight, ["adhoc_notes"], "new rules")
    assert same.condition("adhoc_notes") is not None
    assert other.condition("adhoc_notes") is None


def test_a_full_scan_reads_every_row(notes):
    write(notes, "analytics.adhoc_notes", "INSERT INTO analytics.adhoc_notes VALUES (201, 'ok')")
    due = scan(notes, AS_OF + WEEK)
    assert due.result.scanned["full_scan"] is True
    assert "xmin" not in due.read_of("adhoc_notes")
