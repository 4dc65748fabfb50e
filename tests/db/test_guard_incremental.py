"""The zone scans follow the night's work: in the nightly (`changes.incremental`) an unchanged
night reads no relation, a changed relation is read again and a value planted in it is caught, a
new raw value is looked for in every relation (through the digests kept from unchanged ones), and
the whole zone is read once a week."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from lifecycle.guard import cells, changes, raw_values, values
from lifecycle.guard.key import GuardKey
from lifecycle.guard.provenance import Provenance
from tests.conftest import AS_OF
from tests.shop import PERSONAL, add_delivered

KEY = GuardKey(b"test-guard-key-not-for-production")
DAY = timedelta(days=1)
WEEK = timedelta(days=7)


def wait_for_statistics(engine, table: str, before: tuple) -> None:
    """The writer's session reports its row counts to the cumulative statistics within about a
    second of committing; a scan before that would see the old signature (docs/guard.md)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if counters(engine, table) != before:
            return
        time.sleep(0.2)
    raise AssertionError(f"statistics of {table} never moved")


def counters(engine, table: str) -> tuple:
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                sa.text(
                    "SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_all_tables "
                    "WHERE relid = to_regclass(:t)"
                ),
                {"t": table},
            ).one()
        )


def write(engine, table: str, sql: str, **params) -> None:
    """Runs `sql` and waits until the statistics show it, as they would by the next night."""
    before = counters(engine, table)
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)
    wait_for_statistics(engine, table, before)


@pytest.fixture
def zone(engine):
    """Two analytics tables of the kind analysts make, clean; a delivered order in the raw zone."""
    before = counters(engine, "shop.orders")
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 2 * DAY)
        conn.execute(
            sa.text(
                "CREATE TABLE analytics.adhoc_notes (note text); "
                "CREATE TABLE analytics.adhoc_cells (week text, customers int)"
            )
        )
    wait_for_statistics(engine, "shop.orders", before)
    write(
        engine,
        "analytics.adhoc_notes",
        "INSERT INTO analytics.adhoc_notes VALUES ('blue kettle sold out'), ('restock')",
    )
    write(
        engine, "analytics.adhoc_cells", "INSERT INTO analytics.adhoc_cells VALUES ('2026-W01', 40)"
    )
    yield engine
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE analytics.adhoc_notes, analytics.adhoc_cells"))


def night(engine, policy, at):
    """The three zone scans as the nightly runs them on the night `at`."""
    with changes.incremental(at, WEEK):
        return {
            "patterns": values.personal_value_patterns(engine, KEY),
            "fingerprints": raw_values.raw_values_in_zone(engine, policy, KEY),
            "cells": cells.small_cells(engine, policy),
        }


def test_an_unchanged_night_reads_no_relation(zone, policy):
    first = night(zone, policy, AS_OF)
    assert all(r.passed for r in first.values()), [r.description() for r in first.values()]
    assert first["patterns"].scanned["relations_scanned"] >= 2
    assert first["patterns"].scanned["full_scan"] is True
    second = night(zone, policy, AS_OF + DAY)
    for name, result in second.items():
        assert result.passed, name
        assert result.scanned["relations_scanned"] == 0, name
        assert result.scanned["full_scan"] is False, name
    assert second["patterns"].scanned["relations_unchanged_skipped"] >= 2


def test_a_changed_relation_is_read_and_a_value_planted_in_it_caught(zone, policy):
    night(zone, policy, AS_OF)
    write(
        zone,
        "analytics.adhoc_notes",
        "INSERT INTO analytics.adhoc_notes VALUES ('ring +44 20 7946 0958 after six')",
    )
    write(zone, "analytics.adhoc_cells", "UPDATE analytics.adhoc_cells SET customers = 2")
    second = night(zone, policy, AS_OF + DAY)
    assert second["patterns"].scanned["relations_scanned"] == 2  # the two changed
    assert {(f.table, f.kind) for f in second["patterns"].findings} == {
        ("analytics.adhoc_notes", "phone")
    }
    assert second["cells"].scanned["relations_scanned"] == 1
    assert [f.kind for f in second["cells"].findings] == ["small_cell"]
    # A relation with findings is read again every night until fixed, even unchanged.
    third = night(zone, policy, AS_OF + 2 * DAY)
    assert not third["patterns"].passed and not third["cells"].passed


def test_a_write_just_before_the_scan_is_read_before_its_statistics_arrive(zone, policy):
    """The nightly's refresh writes seconds before the guard: the row versions themselves say the
    table changed, whether or not the writer's statistics have reached the catalog yet."""
    night(zone, policy, AS_OF)
    with zone.begin() as conn:  # no wait for the statistics
        conn.execute(
            sa.text("INSERT INTO analytics.adhoc_notes VALUES ('ring +44 20 7946 0958 after six')")
        )
    second = night(zone, policy, AS_OF + DAY)
    assert second["patterns"].scanned["relations_scanned"] == 1
    assert [(f.table, f.kind) for f in second["patterns"].findings] == [
        ("analytics.adhoc_notes", "phone")
    ]
    with zone.begin() as conn:  # a delete leaves no new row version; the count tells
        conn.execute(sa.text("DELETE FROM analytics.adhoc_notes WHERE note LIKE 'ring%'"))
    third = night(zone, policy, AS_OF + 2 * DAY)
    assert third["patterns"].passed and third["patterns"].scanned["relations_scanned"] == 1


def test_a_raw_value_added_tonight_is_looked_for_in_unchanged_relations(zone, policy):
    night(zone, policy, AS_OF)
    write(
        zone,
        "analytics.adhoc_notes",
        "INSERT INTO analytics.adhoc_notes VALUES ('Zofia Wróblewska-Kowal')",
    )
    quiet = night(zone, policy, AS_OF + DAY)
    assert quiet["fingerprints"].passed  # no customer of that name yet
    before = counters(zone, "shop.orders")
    with zone.begin() as conn:
        add_delivered(conn, 2, AS_OF, customer_id=2, receiver_name="Zofia Wróblewska-Kowal")
    wait_for_statistics(zone, "shop.orders", before)
    after = night(zone, policy, AS_OF + 2 * DAY)
    # Analytics did not change: no relation is read; the kept digests meet the new raw value.
    assert after["patterns"].scanned["relations_scanned"] == 0
    assert after["fingerprints"].scanned["relations_scanned"] == 0
    assert after["fingerprints"].scanned["raw_values"] == "new only"
    assert {(f.table, f.column) for f in after["fingerprints"].findings} == {
        ("analytics.adhoc_notes", "note")
    }


def test_with_a_changed_relation_the_kept_digests_ride_along_in_the_one_raw_pass(zone, policy):
    """A night with a changed relation hashes the whole raw zone for it; the unchanged relations'
    kept digests meet the raw zone in that same pass (one comparison, not a second one over the
    rows written since) and a new raw value in an unchanged relation is still found."""
    night(zone, policy, AS_OF)
    write(
        zone,
        "analytics.adhoc_notes",
        "INSERT INTO analytics.adhoc_notes VALUES ('Zofia Wróblewska-Kowal')",
    )
    night(zone, policy, AS_OF + DAY)  # adhoc_notes read clean: its digests are kept
    before = counters(zone, "shop.orders")
    with zone.begin() as conn:
        add_delivered(conn, 2, AS_OF, customer_id=2, receiver_name="Zofia Wróblewska-Kowal")
    wait_for_statistics(zone, "shop.orders", before)
    # A week no pass has seen: a token never compared, so the raw zone is hashed whole.
    write(zone, "analytics.adhoc_cells", "UPDATE analytics.adhoc_cells SET week = '2026-W02'")
    found, passes = night_counting_passes(zone, policy, AS_OF + 2 * DAY)
    assert found.scanned["relations_scanned"] == 1  # adhoc_cells, changed
    assert found.scanned["raw_values"] == "all and new"
    assert found.scanned["tokens_never_compared"] >= 1
    assert passes == ["all"]
    assert {(f.table, f.column) for f in found.findings} == {("analytics.adhoc_notes", "note")}


def night_counting_passes(engine, policy, at, texts=None, provenance=None):
    """The fingerprint scan of the night `at` (with a run log's `texts`, the nightly's combined
    pass), and its passes over the raw zone: "all" or "new" (rows written since the last)."""
    passes = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().startswith("INSERT INTO guard_hits"):
            passes.append(
                "new" if ":fp_new_xmin" in statement or "%(fp_new_xmin)s" in statement else "all"
            )

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        with changes.incremental(at, WEEK):
            if texts is None:
                found = raw_values.raw_values_in_zone(engine, policy, KEY)
            else:
                found = raw_values.raw_values_in_zone_and_log(
                    engine, policy, KEY, None, texts, "dagster event log", provenance
                )
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    return found, passes


def test_a_changed_relation_whose_tokens_were_compared_before_reads_only_new_raw_values(
    zone, policy
):
    """The nightly's sales refresh rewrites its table every night with the same texts: tokens a
    clean pass compared with the whole raw zone meet only the raw values written since it."""
    night(zone, policy, AS_OF)
    write(zone, "analytics.adhoc_cells", "UPDATE analytics.adhoc_cells SET customers = 41")
    found, passes = night_counting_passes(zone, policy, AS_OF + DAY)
    assert found.passed
    assert found.scanned["relations_scanned"] == 1  # adhoc_cells, changed
    assert found.scanned["tokens_never_compared"] == 0
    # ... and with none written since (the raw zone's signature unchanged), no raw table is read.
    assert found.scanned["raw_values"] == "none (unchanged)"
    assert passes == []


def test_a_leak_in_a_new_raw_row_against_a_token_compared_before_is_caught(zone, policy):
    """A token a past pass found clean, read again in a changed relation, meets the raw rows
    written since: a customer who now has that name is found."""
    write(
        zone,
        "analytics.adhoc_notes",
        "INSERT INTO analytics.adhoc_notes VALUES ('Zofia Wróblewska-Kowal')",
    )
    night(zone, policy, AS_OF)  # clean: no customer of that name yet
    before = counters(zone, "shop.orders")
    with zone.begin() as conn:
        add_delivered(conn, 2, AS_OF, customer_id=2, receiver_name="Zofia Wróblewska-Kowal")
    wait_for_statistics(zone, "shop.orders", before)
    # The relation changes, but only with texts already compared.
    write(zone, "analytics.adhoc_notes", "INSERT INTO analytics.adhoc_notes VALUES ('restock')")
    found, passes = night_counting_passes(zone, policy, AS_OF + DAY)
    assert found.scanned["relations_scanned"] == 1 and passes == ["new"]
    assert found.scanned["raw_values"] == "new only"
    assert {(f.table, f.column, f.kind) for f in found.findings} == {
        ("analytics.adhoc_notes", "note", "raw_value")
    }


def test_a_new_analytics_token_against_old_raw_values_is_caught_and_never_kept(zone, policy):
    """A token no pass compared meets the whole raw zone; a hit is never kept as compared, so the
    next night, the relation unchanged but dirty, finds it again against the old raw row."""
    night(zone, policy, AS_OF)
    night(zone, policy, AS_OF + DAY)  # a position: the next night could read new rows only
    write(
        zone,
        "analytics.adhoc_notes",
        "INSERT INTO analytics.adhoc_notes VALUES ('Wang Fang'), ('restock')",
    )
    found, passes = night_counting_passes(zone, policy, AS_OF + 2 * DAY)
    assert passes == ["all"] and found.scanned["raw_values"] == "all"
    assert {(f.table, f.kind) for f in found.findings} == {("analytics.adhoc_notes", "raw_value")}
    again, passes = night_counting_passes(zone, policy, AS_OF + 3 * DAY)
    assert passes == ["all"]
    assert {(f.table, f.kind) for f in again.findings} == {("analytics.adhoc_notes", "raw_value")}
    with zone.connect() as conn:
        kept = conn.execute(
            sa.text(
                "SELECT count(*) FROM lifecycle.guard_zone_digests "
                "WHERE relation = 'analytics.adhoc_notes' AND mask LIKE '9 chars%'"
            )
        ).scalar()
    assert kept == 0  # 'Wang Fang' (9 characters normalised) hit: not kept


def test_the_run_log_compared_in_the_same_pass_still_catches_a_leak(zone, policy):
    """Without provenance the run log's tokens are not kept: a log text holding an old raw value
    meets the whole raw zone (and a log token equal to a kept analytics digest needs no raw read
    when the raw zone has not changed)."""
    night(zone, policy, AS_OF)
    night(zone, policy, AS_OF + DAY)
    clean, passes = night_counting_passes(
        zone, policy, AS_OF + 2 * DAY, [("run 1 / step", 1, "blue kettle sold out")]
    )
    zone_result, log_result = clean
    assert log_result.passed and passes == []  # the text's tokens all kept from analytics
    leak, passes = night_counting_passes(
        zone, policy, AS_OF + 3 * DAY, [("run 2 / step", 1, "shipping to Wang Fang today")]
    )
    zone_result, log_result = leak
    assert passes == ["all"] and zone_result.passed
    assert {(f.table, f.kind) for f in log_result.findings} == {
        ("dagster event log", "raw_value_in_text")
    }


def test_kept_digests_compared_on_other_terms_read_the_whole_raw_zone(zone, policy):
    """Digests kept before hits were left out (or with other raw columns, tokenizer or key) prove
    nothing: without the stored terms the night compares everything with the whole raw zone."""
    night(zone, policy, AS_OF)
    with zone.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM lifecycle.guard_positions WHERE source = :s"),
            {"s": raw_values.RAW_COMPARED},
        )
    write(zone, "analytics.adhoc_cells", "UPDATE analytics.adhoc_cells SET customers = 42")
    found, passes = night_counting_passes(zone, policy, AS_OF + DAY)
    assert passes == ["all"] and found.scanned["raw_values"] == "all"
    assert found.scanned["relations_scanned"] >= 2  # everything read again


def test_a_new_key_reads_every_relation_again(zone, policy):
    night(zone, policy, AS_OF)
    with changes.incremental(AS_OF + DAY, WEEK):
        rotated = raw_values.raw_values_in_zone(zone, policy, GuardKey(b"another-key-0123456789"))
    assert rotated.passed and rotated.scanned["relations_scanned"] >= 2


def test_the_whole_zone_is_read_once_the_full_scan_is_due(zone, policy):
    night(zone, policy, AS_OF)
    before_due = night(zone, policy, AS_OF + WEEK - timedelta(minutes=1))
    assert before_due["patterns"].scanned["relations_scanned"] == 0
    due = night(zone, policy, AS_OF + WEEK)
    assert due["patterns"].scanned["full_scan"] is True
    assert due["patterns"].scanned["relations_scanned"] >= 2
    assert due["cells"].scanned["relations_scanned"] >= 1


def test_outside_the_nightly_every_relation_is_read_and_nothing_stored(zone, policy):
    result = values.personal_value_patterns(zone, KEY)
    assert result.scanned["relations"] >= 2 and "relations_scanned" not in result.scanned
    with zone.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM lifecycle.guard_positions")).scalar()
    assert stored == 0


def test_a_view_changes_with_the_table_it_reads(zone, policy):
    with zone.begin() as conn:
        conn.execute(
            sa.text("CREATE VIEW analytics.adhoc_view AS SELECT note FROM analytics.adhoc_notes")
        )
    try:
        night(zone, policy, AS_OF)
        write(
            zone,
            "analytics.adhoc_notes",
            "INSERT INTO analytics.adhoc_notes VALUES ('mail me: jan@example.org')",
        )
        second = night(zone, policy, AS_OF + DAY)
        assert {f.table for f in second["patterns"].findings} == {
            "analytics.adhoc_notes",
            "analytics.adhoc_view",
        }
    finally:
        with zone.begin() as conn:
            conn.execute(sa.text("DROP VIEW analytics.adhoc_view"))


RUN_A, RUN_B, RUN_C = (f"{n}e7c2a1f-0b3d-4c5e-8f9a-1b2c3d4e5f6a" for n in "abc")
HASH_A, HASH_B = (n * 64 for n in "ab")


def project_log(run_id: str, digest: str, duration: str, pid: int, extra: str = "") -> list:
    """A night's run log as Dagster and the project write it: a run id, a ledger head, a
    duration, a process id; `extra` is whatever a step also logged."""
    return [
        (f"run {run_id[:8]} / run", 1, f"Executing steps in process (pid: {pid})"),
        (
            f"run {run_id[:8]} / purged_orders",
            2,
            f'Finished execution of step "purged_orders" in {duration}.',
        ),
        (f"run {run_id[:8]} / ledger_anchor", 3, f"purge_ledger:6:{digest}"),
        (f"run {run_id[:8]} / run", 4, f"Started run {run_id} for job nightly_lifecycle"),
        *([(f"run {run_id[:8]} / purged_orders", 5, extra)] if extra else []),
    ]


def test_a_night_whose_new_log_tokens_are_all_project_generated_reads_no_raw_table(zone, policy):
    """The run log's run ids and ledger hashes (confirmed against their records) are cut out and
    its digits folded, so a night whose log differs from the last only in those reads no raw
    table; a personal value logged beside them, with digits or shaped like an id, is still caught
    that night."""
    night(zone, policy, AS_OF)
    night(zone, policy, AS_OF + DAY)
    first, passes = night_counting_passes(
        zone,
        policy,
        AS_OF + 2 * DAY,
        project_log(RUN_A, HASH_A, "86ms", 1234),
        Provenance(frozenset({RUN_A}), frozenset({HASH_A})),
    )
    assert passes == ["all"] and all(r.passed for r in first)  # its tokens met nothing before

    quiet, passes = night_counting_passes(
        zone,
        policy,
        AS_OF + 3 * DAY,
        project_log(RUN_B, HASH_B, "1.83s", 99812),  # a second: another form of duration
        Provenance(frozenset({RUN_B}), frozenset({HASH_B})),
    )
    zone_result, log_result = quiet
    assert passes == []  # no raw table read
    assert log_result.passed and log_result.scanned["raw_values"] == "none (unchanged)"
    assert zone_result.scanned["tokens_never_compared"] == 0
    # the run id, the ledger hash, the step's duration (`1.83s` where the night before had `86ms`)
    assert log_result.scanned["explained_spans"] == 3

    # A customer whose payment reference is shaped like a run id, but is none of this instance's.
    before = counters(zone, "shop.orders")
    with zone.begin() as conn:
        add_delivered(conn, 3, AS_OF, customer_id=3, payment_ref=RUN_C)
    wait_for_statistics(zone, "shop.orders", before)
    for planted, kind in (
        (f"refund to {PERSONAL['receiver_name']} in 12ms", "raw_value_in_text"),
        (PERSONAL["receiver_address"], "raw_value"),  # digits: met folded on both sides
        # five words inside a sentence: a run of words of the log text (up to TEXT_GRAM_WORDS)
        (f"shipped to {PERSONAL['receiver_address']} today", "raw_value_in_text"),
        (PERSONAL["payment_ref"], "raw_value"),
        (f"charged {PERSONAL['payment_ref']} twice", "raw_value_in_text"),
        (f"call {PERSONAL['receiver_phone']} at 9", "raw_phone"),  # phones exact, not folded
        (RUN_C, "raw_value"),  # shaped like a run id, but none of this instance's
    ):
        leak, passes = night_counting_passes(
            zone,
            policy,
            AS_OF + 4 * DAY,
            project_log(RUN_B, HASH_B, "91ms", 4321, extra=planted),
            Provenance(frozenset({RUN_B}), frozenset({HASH_B})),
        )
        zone_result, log_result = leak
        assert passes == ["all"], planted
        assert [(f.table, f.kind) for f in log_result.findings] == [("dagster event log", kind)], (
            planted
        )


def test_the_checks_own_words_have_met_the_raw_zone_before_a_log_first_shows_them(zone, policy):
    """The check writes `new only` into its metadata on its first new-only pass, and the night
    after, the run log shows it: its own words are compared beside every night's log, so that
    night still meets no token that no clean pass has compared (no whole pass for them)."""
    night(zone, policy, AS_OF)
    night(zone, policy, AS_OF + DAY)
    night_counting_passes(
        zone,
        policy,
        AS_OF + 2 * DAY,
        project_log(RUN_A, HASH_A, "86ms", 1234),
        Provenance(frozenset({RUN_A}), frozenset({HASH_A})),
    )
    before = counters(zone, "shop.orders")
    with zone.begin() as conn:
        add_delivered(conn, 3, AS_OF, customer_id=3)
    wait_for_statistics(zone, "shop.orders", before)
    shown = [(f"run {RUN_B[:8]} / raw_value_checks", 6, words) for words in raw_values.RAW_READ]
    (zone_result, log_result), passes = night_counting_passes(
        zone,
        policy,
        AS_OF + 3 * DAY,
        project_log(RUN_B, HASH_B, "91ms", 4321) + shown,
        Provenance(frozenset({RUN_B}), frozenset({HASH_B})),
    )
    assert passes == ["new"] and log_result.passed
    assert zone_result.scanned["tokens_never_compared"] == 0
    assert log_result.scanned["raw_values"] == "new only"
