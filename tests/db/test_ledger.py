"""The audit trail is hash-chained: each kind of tampering is found and named by link, row id and run id."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from lifecycle import db, schema
from lifecycle.ledger import seals
from lifecycle.ledger.chain import chains, heads, verify

LEDGER_ROWS = """
    INSERT INTO lifecycle.purge_ledger (run_id, order_id, purged_at, action, reason, policy_version,
                                        policy_hash, cleared_columns)
    SELECT :run, g, now(), 'purge', 'after_sales_window', '1', 'h', ARRAY['receiver_name']
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) g
"""


# Row 50, written with the chain's triggers disabled (the table owner's power): in no link.
FORGED_ROW_AROUND_THE_TRIGGERS = """
    ALTER TABLE lifecycle.purge_ledger DISABLE TRIGGER USER;
    INSERT INTO lifecycle.purge_ledger (ledger_id, run_id, order_id, purged_at, action, reason,
        policy_version, policy_hash, cleared_columns)
    VALUES (50, 'night-9', 500, now(), 'purge', 'after_sales_window', '1', 'h', ARRAY['x']);
    ALTER TABLE lifecycle.purge_ledger ENABLE TRIGGER USER"""


def write(engine, run: str, first: int, last: int) -> None:
    """One writer's statement: orders first..last cleared by `run`."""
    with engine.begin() as conn:
        conn.execute(sa.text(LEDGER_ROWS), {"run": run, "first": first, "last": last})


@pytest.fixture
def ledger(engine):
    """Three nights of the purge ledger (ids 1-5, 6-8, 9-10) and an alert: four links."""
    write(engine, "night-1", 101, 105)
    write(engine, "night-2", 106, 108)
    write(engine, "night-3", 109, 110)
    with engine.begin() as conn:
        conn.execute(
            sa.text("""INSERT INTO lifecycle.alerts (kind, dedupe_key, run_id, message)
                       VALUES ('run_failed', 'night-2', 'night-2', 'nightly run night-2 failed')""")
        )
    return engine


def tamper(engine, sql: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(sql))


def first_break(engine, anchors=None):
    result = verify(engine, anchors)
    assert not result.intact
    return result.breaks[0]


def test_an_untouched_ledger_verifies_with_one_link_per_statement(ledger):
    result = verify(ledger, heads(ledger))
    assert result.intact, result.summary()
    by_chain = {r.chain: r for r in result.ranges}
    assert (by_chain["purge_ledger"].links, by_chain["purge_ledger"].rows) == (3, 10)
    assert (by_chain["alerts"].links, by_chain["alerts"].rows) == (1, 1)
    assert result.anchors_checked == 2 and result.summary().startswith("intact: 11 rows in 4 links")


def test_an_edited_row_is_found(ledger):
    tamper(ledger, "UPDATE lifecycle.purge_ledger SET order_id = 999 WHERE ledger_id = 7")
    found = first_break(ledger)
    assert (found.chain, found.link_seq, found.row_id, found.run_id) == (
        "purge_ledger",
        2,
        6,
        "night-2",
    )
    assert "altered" in found.kind and "999" not in found.line()


def test_an_edited_alert_message_is_found_but_its_delivery_may_change(ledger):
    tamper(ledger, "UPDATE lifecycle.alerts SET delivered_at = now(), attempts = 1")
    assert verify(ledger).intact
    tamper(ledger, "UPDATE lifecycle.alerts SET message = 'all fine'")
    assert first_break(ledger).chain == "alerts"


def test_a_deleted_row_is_found(ledger):
    tamper(ledger, "DELETE FROM lifecycle.purge_ledger WHERE ledger_id = 3")
    found = first_break(ledger)
    assert (found.link_seq, found.run_id) == (1, "night-1")
    assert found.kind == "1 of its 5 rows are missing (deleted)"


def test_a_forged_row_inserted_around_the_triggers_is_found(ledger):
    tamper(ledger, FORGED_ROW_AROUND_THE_TRIGGERS)
    found = first_break(ledger)
    assert (found.link_seq, found.row_id) == (3, 50) and "belongs to no link" in found.kind


def test_a_forged_row_inside_a_link_is_found(ledger):
    tamper(ledger, "DELETE FROM lifecycle.purge_ledger WHERE ledger_id = 4")
    tamper(
        ledger,
        """ALTER TABLE lifecycle.purge_ledger DISABLE TRIGGER USER;
        INSERT INTO lifecycle.purge_ledger (ledger_id, run_id, order_id, purged_at, action, reason,
            policy_version, policy_hash, cleared_columns)
        VALUES (4, 'night-1', 104, now(), 'purge', 'after_sales_window', '1', 'h', ARRAY['receiver_name']);
        ALTER TABLE lifecycle.purge_ledger ENABLE TRIGGER USER""",
    )
    found = first_break(ledger)
    assert (found.link_seq, found.row_id) == (1, 1) and "altered" in found.kind


def test_reordered_rows_are_found(ledger):
    tamper(
        ledger,
        """UPDATE lifecycle.purge_ledger SET ledger_id = -ledger_id WHERE ledger_id IN (1, 2);
           UPDATE lifecycle.purge_ledger SET ledger_id = 2 WHERE ledger_id = -1;
           UPDATE lifecycle.purge_ledger SET ledger_id = 1 WHERE ledger_id = -2""",
    )
    found = first_break(ledger)
    assert (found.link_seq, found.row_id, found.run_id) == (1, 1, "night-1")


def test_reordered_links_are_found(ledger):
    tamper(
        ledger,
        """UPDATE lifecycle.ledger_links SET link_seq = -link_seq WHERE chain = 'purge_ledger' AND link_seq IN (2, 3);
           UPDATE lifecycle.ledger_links SET link_seq = 3 WHERE link_seq = -2;
           UPDATE lifecycle.ledger_links SET link_seq = 2 WHERE link_seq = -3""",
    )
    found = first_break(ledger)
    # Link 1 is now followed by night-3's ids, so night-2's rows sit in no link; link 2 is altered.
    assert (found.chain, found.link_seq, found.row_id) == ("purge_ledger", 1, 6)
    assert [b.kind for b in verify(ledger).breaks][:1] == [found.kind]


def test_a_truncated_tail_is_found_by_the_anchors(ledger):
    anchors = heads(ledger)  # what last night recorded in the run history
    tamper(
        ledger,
        """DELETE FROM lifecycle.purge_ledger WHERE ledger_id > 8;
           DELETE FROM lifecycle.ledger_links WHERE chain = 'purge_ledger' AND link_seq = 3""",
    )
    assert verify(ledger).intact  # the chain alone cannot tell: it ends cleanly at link 2
    found = first_break(ledger, anchors)
    assert (found.chain, found.link_seq) == ("purge_ledger", 3) and "truncated" in found.kind


def test_a_rebuilt_chain_differs_from_its_anchor(ledger):
    anchors = heads(ledger)
    # Whoever edits a row and recomputes every hash after it still differs from the anchor.
    tamper(
        ledger,
        """UPDATE lifecycle.purge_ledger SET order_id = 999 WHERE ledger_id = 9;
           UPDATE lifecycle.ledger_links SET content_hash = '\\x00', link_hash = lifecycle.ledger_link_hash(
               chain, link_seq, first_id, last_id, rows, '\\x00', prev_hash)
           WHERE chain = 'purge_ledger' AND link_seq = 3""",
    )
    found = first_break(ledger, anchors)
    assert found.link_seq == 3


def test_since_verifies_only_the_later_links_but_their_order_from_the_start(ledger):
    tamper(
        ledger,
        "UPDATE lifecycle.ledger_links SET recorded_at = now() - interval '2 days' WHERE link_seq = 1",
    )
    tamper(ledger, "UPDATE lifecycle.purge_ledger SET order_id = 999 WHERE ledger_id = 2")
    later = verify(ledger, since=datetime.now(UTC) - timedelta(days=1))
    assert later.intact and {r.chain: r.rows for r in later.ranges}["purge_ledger"] == 5
    assert not verify(ledger).intact


def test_concurrent_writers_are_serialised_into_one_chain(engine):
    """A second writer waits for the first's commit, so their ids never interleave."""
    first = engine.connect()
    tx = first.begin()
    first.execute(sa.text(LEDGER_ROWS), {"run": "a", "first": 1, "last": 3})
    second = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    second.execute(sa.text("SET lock_timeout = '200ms'"))
    with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
        second.execute(sa.text(LEDGER_ROWS), {"run": "b", "first": 4, "last": 5})
    tx.commit()
    second.execute(sa.text(LEDGER_ROWS), {"run": "b", "first": 4, "last": 5})
    first.close()
    second.close()
    assert verify(engine).intact


def test_a_link_written_before_migration_0070_still_verifies_in_its_own_form(ledger):
    """Links of form 1 (a SHA-256 of each row's text) keep verifying next to form-2 links."""
    with ledger.begin() as conn:
        [alerts] = [c for c in chains(conn) if c.name == "alerts"]
    rewrite_as_form_1 = f"""
        UPDATE lifecycle.ledger_links l SET form = 1, content_hash = c.content,
               link_hash = lifecycle.ledger_link_hash(chain, link_seq, first_id, last_id, rows,
                                                      c.content, prev_hash)
        FROM (SELECT sha256(string_agg(d, ''::bytea)) AS content
              FROM (SELECT sha256(textsend({alerts.text})) AS d FROM lifecycle.alerts
                    ORDER BY alert_id) s) c
        WHERE l.chain = 'alerts'"""
    tamper(ledger, rewrite_as_form_1)
    assert verify(ledger).intact
    tamper(ledger, "UPDATE lifecycle.alerts SET message = 'all fine'")
    assert first_break(ledger).chain == "alerts"


def test_a_link_whose_form_was_switched_is_found(ledger):
    tamper(
        ledger,
        "UPDATE lifecycle.ledger_links SET form = 1 WHERE chain = 'purge_ledger' AND link_seq = 2",
    )
    found = first_break(ledger)
    assert (found.chain, found.link_seq, found.row_id, found.run_id) == (
        "purge_ledger",
        2,
        6,
        "night-2",
    )


REMOVALS = """
    INSERT INTO lifecycle.handoff_removals (run_id, carrier, reason, removed, order_ids)
    VALUES (:run, 'sf_express', 'delivered', 2, ARRAY[101, 102]), (:run, 'zto_express', 'purged', 1, ARRAY[103])
"""


@pytest.mark.parametrize(
    "tampering, kind",
    [
        (
            "UPDATE lifecycle.handoff_removals SET order_ids = ARRAY[101] WHERE removal_id = 1",
            "altered",
        ),
        (
            "UPDATE lifecycle.handoff_removals SET reason = 'order_gone' WHERE removal_id = 3",
            "altered",
        ),
        ("DELETE FROM lifecycle.handoff_removals WHERE removal_id = 4", "missing"),
    ],
)
def test_tampering_with_the_hand_off_removal_log_is_found(engine, tampering, kind):
    for run in ("night-1", "night-2"):
        with engine.begin() as conn:
            conn.execute(sa.text(REMOVALS), {"run": run})
    assert verify(engine).intact
    tamper(engine, tampering)
    found = first_break(engine)
    assert found.chain == "handoff_removals" and kind in found.kind
    assert "sf_express" not in found.line() and "101" not in found.line()


@pytest.fixture
def database_at(database_url, request):
    """A database of its own, migrated up to the revision `request.param` only."""
    name = f"{database_url.database}_at_{request.param}"
    admin = database_url
    db.drop_database(admin, name)
    db.ensure_database(admin, name)
    engine = db.create_engine(admin.set(database=name))
    schema.upgrade(engine, request.param)
    yield engine
    engine.dispose()
    db.drop_database(admin, name)


@pytest.mark.parametrize(
    "database_at, forms",
    [("0060", [1, 3]), ("0120", [2, 3]), ("0160", [3, 3])],
    indirect=["database_at"],
    ids=["before-0070", "before-0130", "before-0170"],
)
def test_links_written_before_an_upgrade_keep_verifying_in_their_own_form_after_it(
    database_at, forms
):
    engine = database_at
    write(engine, "night-1", 101, 105)
    schema.upgrade(engine)
    write(engine, "night-2", 106, 108)
    with engine.connect() as conn:
        written = conn.execute(
            sa.text(
                "SELECT form FROM lifecycle.ledger_links WHERE chain = 'purge_ledger' ORDER BY link_seq"
            )
        ).scalars()
        assert list(written) == forms
    result = verify(engine)
    assert result.intact, result.summary()
    tamper(engine, "UPDATE lifecycle.purge_ledger SET order_id = 999 WHERE ledger_id = 2")
    found = first_break(engine)
    assert (found.link_seq, found.run_id) == (1, "night-1")


@pytest.mark.parametrize("database_at", ["0160"], indirect=True)
def test_the_upgrade_that_links_rows_above_the_head_refuses_rows_in_no_link(database_at):
    """From 0170 on, a statement links every row above the head link; an upgrade over a ledger
    with rows there already would link them, so it stops and names the table and the first id."""
    engine = database_at
    write(engine, "night-1", 101, 105)
    tamper(engine, FORGED_ROW_AROUND_THE_TRIGGERS)
    with pytest.raises(Exception, match=r"lifecycle\.purge_ledger: row 50 .* in no ledger link"):
        schema.upgrade(engine)
    tamper(engine, "DELETE FROM lifecycle.purge_ledger WHERE ledger_id = 50")
    schema.upgrade(engine)
    write(engine, "night-2", 106, 108)
    assert verify(engine).intact


def test_the_chain_keeps_no_copy_of_a_statements_rows_and_links_each_statement_apart(engine):
    """No chained table's trigger declares a transition table (PostgreSQL would copy every
    inserted row for it, enabled or not); two statements of one transaction, and one statement
    inserting twice into a table, each get exactly their own rows."""
    with engine.connect() as conn:
        capturing = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'ledger_link' "
                "AND tgnewtable IS NOT NULL"
            )
        ).scalar()
        chained = conn.execute(
            sa.text("SELECT count(*) FROM pg_trigger WHERE tgname = 'ledger_link'")
        ).scalar()
    assert (capturing, chained) == (0, 5)
    with engine.begin() as conn:
        conn.execute(sa.text(LEDGER_ROWS), {"run": "a", "first": 1, "last": 3})
        conn.execute(sa.text(LEDGER_ROWS), {"run": "b", "first": 4, "last": 7})
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "WITH first AS ("
                + LEDGER_ROWS.replace(":run", "'c'")
                + " RETURNING 1) "
                + LEDGER_ROWS.replace(":run", "'c'").replace(":first", ":second")
            ),
            {"first": 8, "last": 9, "second": 9},
        )
        links = conn.execute(
            sa.text(
                "SELECT first_id, last_id, rows, run_id FROM lifecycle.ledger_links "
                "WHERE chain = 'purge_ledger' ORDER BY link_seq"
            )
        ).all()
    assert [tuple(link) for link in links][:2] == [(1, 3, 3, "a"), (4, 7, 4, "b")]
    assert sum(link.rows for link in links[2:]) == 3 and links[-1].last_id == 10
    assert verify(engine).intact


# One statement whose rows alternate between two rests (an order with an after-sales case clears
# one column more), so form 3 sends some rows' rest and not others'.
MIXED_ROWS = """
    INSERT INTO lifecycle.purge_ledger (run_id, order_id, purged_at, action, reason, policy_version,
                                        policy_hash, cleared_columns)
    SELECT 'night-4', g, now(), 'purge', 'after_sales_window', '1', 'h',
           CASE WHEN g % 3 = 0 THEN ARRAY['receiver_name', 'note'] ELSE ARRAY['receiver_name'] END
    FROM generate_series(201, 212) g
"""


def test_a_form_3_link_hashes_each_key_and_only_the_rests_that_differ_from_the_row_before(ledger):
    """The link's content, recomputed here in Python from each row's two send forms, byte for byte
    as migration 0130 documents it."""
    tamper(ledger, MIXED_ROWS)
    with ledger.connect() as conn:
        [purges] = [c for c in chains(conn) if c.name == "purge_ledger"]
        first, last, stored = conn.execute(
            sa.text("""SELECT first_id, last_id, content_hash FROM lifecycle.ledger_links
                       WHERE chain = 'purge_ledger' AND form = 3 ORDER BY link_seq DESC LIMIT 1""")
        ).one()
        rows = conn.execute(
            sa.text(f"""SELECT record_send({purges.key}), record_send({purges.rest})
                        FROM lifecycle.purge_ledger WHERE ledger_id BETWEEN :a AND :b
                        ORDER BY ledger_id"""),
            {"a": first, "b": last},
        ).all()
    content, before, sent = b"", None, 0
    for key, rest in rows:
        if rest == before:
            content += bytes(key) + b"\x00"
        else:
            content += bytes(key) + b"\x01" + bytes(rest)
            sent += 1
        before = rest
    assert len(rows) == 12 and sent == 8  # the first row, then each change of rest
    assert bytes(stored) == hashlib.sha256(content).digest()


@pytest.mark.parametrize(
    "edit",
    [
        # a row that differed from the one before made to repeat it: its rest is no longer sent
        "UPDATE lifecycle.purge_ledger SET cleared_columns = ARRAY['receiver_name'] WHERE order_id = 204",
        # a row that repeated the one before made to differ
        "UPDATE lifecycle.purge_ledger SET reason = 'request' WHERE order_id = 206",
        # two rows swapping their rests
        "UPDATE lifecycle.purge_ledger SET cleared_columns = CASE order_id WHEN 207 THEN ARRAY['receiver_name'] "
        "ELSE ARRAY['receiver_name', 'note'] END WHERE order_id IN (207, 208)",
    ],
    ids=["made-to-repeat", "made-to-differ", "rests-swapped"],
)
def test_a_form_3_row_edited_against_the_row_before_is_found(ledger, edit):
    tamper(ledger, MIXED_ROWS)
    assert verify(ledger).intact
    tamper(ledger, edit)
    found = first_break(ledger)
    assert (found.chain, found.run_id) == ("purge_ledger", "night-4")
    assert "receiver_name" not in found.line()


def test_a_reseeded_demo_shop_is_a_new_installation_whose_chains_owe_nothing_to_old_anchors(engine):
    """A second `make demo` replaces the shop and restarts its purge chain: the anchors the run
    history kept for the first shop must not be checked against the second (they name links that
    no longer exist), so the reseed gives the shop a new identity."""
    from lifecycle import synthetic
    from lifecycle.ledger.chain import shop_identity

    synthetic.seed_shop(engine, orders=300, seed=3)
    write(engine, "demo-night-1", 101, 105)
    first_shop, first_anchors = shop_identity(engine), heads(engine)
    assert verify(engine, first_anchors).intact

    synthetic.seed_shop(engine, orders=300, seed=3)
    write(engine, "demo-night-2", 201, 202)
    assert shop_identity(engine) != first_shop
    assert verify(engine, heads(engine)).intact
    # What the old anchors say about the new chain: broken. Filtering by identity avoids it.
    assert not verify(engine, first_anchors).intact


# Sealed verification (lifecycle/ledger/seals.py): the nightly seals what it found intact and the
# next verification re-hashes only later links, proving the sealed rows untouched by their count
# and their row versions' transaction ids.


def seal(engine):
    """What the nightly check does: verify, seal, and record the seals' hashes (returned here as
    the run history would hold them)."""
    result = verify(engine, heads(engine), seal=True)
    assert result.intact, result.summary()
    return seals.save(engine, result.new_seals)


def sealed_break(engine, anchors, seal_anchors):
    """The first break found by the sealed verification; the full one must agree it is broken."""
    result = verify(engine, anchors, seal_anchors=seal_anchors)
    assert not result.intact
    full = verify(engine, anchors, seal_anchors=seal_anchors, full=True)
    assert not full.intact and full.breaks[0].chain == result.breaks[0].chain
    return result.breaks[0], result


def test_a_sealed_ledger_verifies_without_re_hashing_and_later_links_are_re_hashed(ledger):
    anchors, sealed = heads(ledger), seal(ledger)
    result = verify(ledger, anchors, seal_anchors=sealed)
    assert result.intact, result.summary()
    modes = {r.chain: r.mode for r in result.ranges}
    assert modes["purge_ledger"] == modes["alerts"] == "sealed"
    assert (result.rows, result.rehashed) == (11, 0)
    assert (
        "11 rows in 4 links" in result.summary()
        and "untouched since their seal" in result.summary()
    )
    write(ledger, "night-4", 111, 112)
    later = verify(ledger, heads(ledger), seal_anchors=sealed)
    assert later.intact and (later.rows, later.rehashed) == (13, 2)
    tamper(ledger, "UPDATE lifecycle.purge_ledger SET order_id = 999 WHERE ledger_id = 12")
    result = verify(ledger, seal_anchors=sealed)
    assert not result.intact and result.ranges[-2].mode == "sealed"  # the new link is re-hashed
    assert (result.breaks[0].link_seq, result.breaks[0].run_id) == (4, "night-4")


@pytest.mark.parametrize(
    "tampering, link_seq, words",
    [
        ("UPDATE lifecycle.purge_ledger SET order_id = 999 WHERE ledger_id = 7", 2, "altered"),
        ("DELETE FROM lifecycle.purge_ledger WHERE ledger_id = 3", 1, "missing"),
        (  # same count, same ids: only the row versions tell
            """DELETE FROM lifecycle.purge_ledger WHERE ledger_id = 4;
            ALTER TABLE lifecycle.purge_ledger DISABLE TRIGGER USER;
            INSERT INTO lifecycle.purge_ledger (ledger_id, run_id, order_id, purged_at, action,
                reason, policy_version, policy_hash, cleared_columns)
            VALUES (4, 'night-1', 104, now(), 'purge', 'after_sales_window', '1', 'h', ARRAY['x']);
            ALTER TABLE lifecycle.purge_ledger ENABLE TRIGGER USER""",
            1,
            "altered",
        ),
        (
            FORGED_ROW_AROUND_THE_TRIGGERS,
            3,
            "belongs to no link",
        ),
        (
            """UPDATE lifecycle.purge_ledger SET ledger_id = -ledger_id WHERE ledger_id IN (1, 2);
            UPDATE lifecycle.purge_ledger SET ledger_id = 2 WHERE ledger_id = -1;
            UPDATE lifecycle.purge_ledger SET ledger_id = 1 WHERE ledger_id = -2""",
            1,
            "altered or reordered",
        ),
        (
            """DELETE FROM lifecycle.purge_ledger WHERE ledger_id > 8;
            DELETE FROM lifecycle.ledger_links WHERE chain = 'purge_ledger' AND link_seq = 3""",
            3,
            "truncated",
        ),
    ],
    ids=["edit", "delete", "delete-and-reinsert", "forged-insert", "reorder", "truncate-tail"],
)
def test_each_tampering_under_a_seal_is_found_by_the_sealed_and_the_full_verification(
    ledger, tampering, link_seq, words
):
    anchors, sealed = heads(ledger), seal(ledger)
    tamper(ledger, tampering)
    found, result = sealed_break(ledger, anchors, sealed)
    assert (found.chain, found.link_seq) == ("purge_ledger", link_seq) and words in found.kind
    assert result.metadata()["modes"]["alerts"] == "sealed"  # untouched chains stay sealed


def test_a_row_changed_by_a_transaction_running_while_the_seal_was_taken_is_found(ledger):
    """Its transaction id is older than the seal's horizon: the seal lists it as in progress."""
    anchors = heads(ledger)
    running = ledger.connect()
    tx = running.begin()
    running.execute(sa.text("SELECT pg_current_xact_id()"))  # it has an id before the seal
    sealed = seal(ledger)
    running.execute(sa.text("UPDATE lifecycle.purge_ledger SET order_id = 999 WHERE ledger_id = 2"))
    tx.commit()
    running.close()
    found, result = sealed_break(ledger, anchors, sealed)
    assert (found.link_seq, found.run_id) == (1, "night-1")
    assert "written after the seal" in result.metadata()["modes"]["purge_ledger"]


def test_a_row_changed_in_a_subtransaction_running_while_the_seal_was_taken_is_found(ledger):
    """A snapshot lists running top-level transactions only: a subtransaction's id, below the
    horizon once a later transaction committed, is found running in the commit log instead."""
    anchors = heads(ledger)
    running = ledger.connect()
    tx = running.begin()
    running.execute(sa.text("SELECT pg_current_xact_id()"))
    inner = running.begin_nested()
    running.execute(sa.text("CREATE TEMP TABLE sub_id (x int)"))
    running.execute(sa.text("INSERT INTO sub_id VALUES (1)"))  # the subtransaction has an id now
    with ledger.begin() as other:  # a later transaction commits: the horizon moves past it
        other.execute(sa.text("SELECT pg_current_xact_id()"))
    sealed = seal(ledger)
    running.execute(sa.text("UPDATE lifecycle.purge_ledger SET order_id = 999 WHERE ledger_id = 2"))
    inner.commit()
    tx.commit()
    running.close()
    found, result = sealed_break(ledger, anchors, sealed)
    assert (found.link_seq, found.run_id) == (1, "night-1")
    assert "written after the seal" in result.metadata()["modes"]["purge_ledger"]


def test_no_seal_is_taken_while_too_many_transactions_ran_since_the_oldest_running_one(
    ledger, monkeypatch
):
    """Listing every running subtransaction costs one commit-log lookup per id in the window; past
    the bound the night seals nothing and the chains keep the seal they had."""
    earlier = seal(ledger)
    monkeypatch.setattr(seals, "MAX_SEAL_WINDOW", 0)
    running = ledger.connect()
    tx = running.begin()
    running.execute(sa.text("SELECT pg_current_xact_id()"))
    with ledger.begin() as other:
        other.execute(sa.text("SELECT pg_current_xact_id()"))
    tonight = verify(ledger, heads(ledger), seal=True, seal_anchors=earlier)
    tx.rollback()
    running.close()
    assert tonight.intact and tonight.new_seals == []
    assert tonight.metadata()["modes"]["purge_ledger"] == "sealed"  # the earlier seal still holds


def test_a_vacuum_full_or_a_reload_of_a_sealed_table_is_no_false_alarm(engine, ledger):
    anchors, sealed = heads(ledger), seal(ledger)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM FULL lifecycle.purge_ledger"))
    result = verify(ledger, anchors, seal_anchors=sealed)
    assert result.intact, result.summary()
    assert result.metadata()["modes"]["purge_ledger"] == "sealed"  # it keeps the row versions' xmin
    # A pg_repack or a dump and reload writes every row again, unchanged: the pass cannot prove
    # the range, so the chain is re-hashed in full, which finds it intact.
    tamper(
        ledger,
        """CREATE TEMP TABLE copy AS SELECT * FROM lifecycle.purge_ledger;
        ALTER TABLE lifecycle.purge_ledger DISABLE TRIGGER USER;
        TRUNCATE lifecycle.purge_ledger;
        INSERT INTO lifecycle.purge_ledger SELECT * FROM copy;
        ALTER TABLE lifecycle.purge_ledger ENABLE TRIGGER USER""",
    )
    reloaded = verify(ledger, anchors, seal_anchors=sealed)
    assert reloaded.intact, reloaded.summary()
    assert (
        reloaded.metadata()["modes"]["purge_ledger"]
        == "full (10 row versions written after the seal)"
    )


def test_a_forged_seal_in_the_database_is_caught_by_its_anchor(ledger):
    anchors, sealed = heads(ledger), seal(ledger)
    tamper(ledger, "UPDATE lifecycle.purge_ledger SET order_id = 999 WHERE ledger_id = 7")
    # Whoever edited the row moves the seal's horizon past the edit, so the pass would pass it.
    tamper(
        ledger,
        """UPDATE lifecycle.ledger_seals
           SET horizon = CAST(CAST(pg_snapshot_xmax(pg_current_snapshot()) AS text) AS bigint)""",
    )
    result = verify(ledger, anchors, seal_anchors=sealed)
    kinds = [b.kind for b in result.breaks]
    assert any("differs from the one the run history recorded (forged)" in k for k in kinds)
    assert any("altered" in k for k in kinds)  # the forged seal was not used: re-hashed in full
    assert result.metadata()["modes"]["purge_ledger"] == "full (no seal)"


def test_a_seal_the_run_history_never_recorded_is_not_used(ledger):
    anchors, sealed = heads(ledger), seal(ledger)
    tamper(ledger, "UPDATE lifecycle.purge_ledger SET order_id = 999 WHERE ledger_id = 7")
    with ledger.connect() as conn:  # a forger's own seal, taken after the edit
        seals.save(ledger, [seals.seal_point(conn, seals.here(conn))["purge_ledger"]])
    found, _result = sealed_break(ledger, anchors, sealed)
    assert (found.link_seq, found.row_id) == (2, 6)


def test_the_nightly_re_hashes_in_full_once_the_last_full_recompute_is_a_week_old(ledger):
    sealed = seal(ledger)
    week = timedelta(days=7)
    soon = datetime.now(UTC) + timedelta(days=6)
    assert verify(ledger, seal_anchors=sealed, full_every=week, now=soon).ranges[0].mode == "sealed"
    late = verify(
        ledger, seal_anchors=sealed, full_every=week, now=soon + timedelta(days=1), seal=True
    )
    assert {r.mode for r in late.ranges if r.links} == {"full (due)"}
    again = seals.save(ledger, late.new_seals)
    with ledger.connect() as conn:
        trusted = seals.trusted(conn, sealed + again).seals
    assert trusted["purge_ledger"].full_at == trusted["purge_ledger"].verified_at  # restarted
    resealed = verify(ledger, seal_anchors=sealed + again, full_every=week, now=soon, seal=True)
    [kept] = [s for s in resealed.new_seals if s.chain == "purge_ledger"]
    assert kept.full_at == trusted["purge_ledger"].full_at  # a sealed night keeps the full's time


def test_a_chain_with_many_rows_is_re_hashed_in_two_halves_that_find_the_same_break(
    ledger, monkeypatch
):
    from lifecycle.ledger import chain as chain_module

    tamper(ledger, "UPDATE lifecycle.purge_ledger SET order_id = 999 WHERE ledger_id = 9")
    whole = first_break(ledger)
    monkeypatch.setattr(chain_module, "SPLIT_ROWS", 1)
    halves = verify(ledger)
    assert halves.breaks[0] == whole and halves.rows == verify(ledger).rows


def recorded_seal_covering_an_edit(engine, edit: bool, **changes):
    """A seal taken while the ledger was intact, then (after an optional edit) given a horizon
    past the edit and the `changes` (fields or functions of the database it runs in), saved and
    recorded in the run history as honestly as the nightly would: what a seal copied with its
    record from another cluster, or kept across a restore, looks like."""
    [taken] = [s for s in verify(engine, seal=True).new_seals if s.chain == "purge_ledger"]
    if edit:
        tamper(engine, "UPDATE lifecycle.purge_ledger SET order_id = 999 WHERE ledger_id = 7")
    with engine.connect() as conn:
        here = seals.here(conn)
    values = {"horizon": here.next_xid, "in_progress": ()}
    values.update({k: v(here) if callable(v) else v for k, v in changes.items()})
    return seals.save(engine, [replace(taken, **values)])


IDENTITY_CASES = {
    "another-cluster": (
        {"system_id": lambda here: here.system_id + 1},
        "full (the seal was taken on another cluster)",
    ),
    "another-database": (
        {"database_oid": lambda here: here.database_oid + 1},
        "full (the seal was taken in another database)",
    ),
    "no-cluster-named": ({"system_id": None}, "full (the seal does not name its cluster)"),
    # The same low 32 bits one epoch later: by xmin alone the edit would look older than the seal.
    "horizon-ahead": (
        {"horizon": lambda here: here.next_xid + 2**32},
        "full (the seal's horizon is ahead of this cluster's transaction counter)",
    ),
}


@pytest.mark.parametrize("edit", [False, True], ids=["untouched", "edited"])
@pytest.mark.parametrize("case", list(IDENTITY_CASES), ids=list(IDENTITY_CASES))
def test_a_seal_from_another_database_or_ahead_of_the_counter_is_not_used(ledger, case, edit):
    changes, mode = IDENTITY_CASES[case]
    # The recorded seal's horizon lies after the edit: a cheap pass trusting it would pass it.
    sealed = recorded_seal_covering_an_edit(ledger, edit, **changes)
    result = verify(ledger, seal_anchors=sealed)
    assert result.metadata()["modes"]["purge_ledger"] == mode
    if edit:  # re-hashed in full instead, which finds the edit
        [found] = result.breaks
        assert (found.chain, found.link_seq, found.row_id) == ("purge_ledger", 2, 6)
    else:  # and no false alarm
        assert result.intact, result.summary()


def test_the_same_seal_in_its_own_database_is_used(ledger):
    """The control for the cases above: only the named difference makes them fall back."""
    sealed = recorded_seal_covering_an_edit(ledger, False)
    assert verify(ledger, seal_anchors=sealed).metadata()["modes"]["purge_ledger"] == "sealed"


def test_a_role_that_may_not_read_the_cluster_identity_falls_back_to_full(engine, ledger):
    """The tests' role is a superuser; a job role without EXECUTE on pg_control_system() (the
    function's grant is per database) gets no usable seal, and says so, rather than an error."""
    sealed = seal(ledger)
    role = f"lifecycle_test_{os.getpid()}_job"
    admin = engine.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" NOLOGIN'))
        conn.execute(sa.text(f'GRANT USAGE ON SCHEMA lifecycle TO "{role}"'))
        conn.execute(sa.text(f'GRANT SELECT ON ALL TABLES IN SCHEMA lifecycle TO "{role}"'))
        conn.execute(sa.text("REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC"))
    job = db.create_engine(engine.url)

    @sa.event.listens_for(job, "connect")
    def _as_job(dbapi_connection, _record):
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f'SET ROLE "{role}"')

    try:
        result = verify(job, seal_anchors=sealed, seal=True)
        assert result.intact, result.summary()
        assert result.metadata()["modes"]["purge_ledger"] == (
            "full (the job's role may not read the cluster's identity (pg_control_system))"
        )
        assert {s.system_id for s in result.new_seals} == {None}  # and its seals are never used
    finally:
        job.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text("GRANT EXECUTE ON FUNCTION pg_control_system() TO PUBLIC"))
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
