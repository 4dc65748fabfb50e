"""Change capture: triggers on the raw tables record which hours of sales changed.

The triggers append the UTC hours (of `placed_at`) whose sales rows changed to
`lifecycle.sales_changes`; the nightly refresh rebuilds the days those hours fall on, so it reads
about one day of orders, not the table. They are generated from the policy's mapping and
installed (again) by every build whenever they are not exactly the ones that mapping needs.
"""

from __future__ import annotations

import hashlib
import time

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.policy import Policy
from lifecycle.sales.source import Source

CAPTURE_TRIGGER_PREFIX = "lifecycle_sales_"
# Installing the triggers locks the raw tables (DROP TRIGGER: ACCESS EXCLUSIVE; CREATE TRIGGER:
# SHARE ROW EXCLUSIVE). Behind another session's long transaction on them, the wait would also
# hold up every query of the shop's own that queues behind it, so each attempt waits this long.
CAPTURE_LOCK_TIMEOUT_MS = 3000
CAPTURE_ATTEMPTS = 3
CAPTURE_PAUSE_S = 5.0  # between attempts: the shop's queued queries run meanwhile
LOCK_NOT_AVAILABLE = "55P03"
_RESTORE_LOCK_TIMEOUT = sa.text("SELECT set_config('lock_timeout', :before, true)")
_TABLES = ("orders", "items")
_EVENTS = ("insert", "delete", "update", "truncate")


def _table_triggers(name: str, table: str, columns: str, when: str) -> list[str]:
    """The four triggers of one raw table (`name` is orders or items), in the order of _EVENTS."""
    p, capture = CAPTURE_TRIGGER_PREFIX, f"lifecycle.sales_capture_{name}"
    return [
        f"""CREATE TRIGGER {p}{name}_insert AFTER INSERT ON {table}
            REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT
            EXECUTE FUNCTION {capture}_rows()""",
        f"""CREATE TRIGGER {p}{name}_delete AFTER DELETE ON {table}
            REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT
            EXECUTE FUNCTION {capture}_rows()""",
        f"""CREATE TRIGGER {p}{name}_update AFTER UPDATE OF {columns} ON {table}
            FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION {capture}_update()""",
        f"""CREATE TRIGGER {p}{name}_truncate AFTER TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION lifecycle.sales_capture_truncate()""",
    ]


def _capture_ddl(src: Source, zone: str | None = None) -> list[str]:
    """Trigger functions and triggers that record which UTC hours of placed_at changed.

    INSERT and DELETE are statement-level with transition tables (one insert per statement, so a
    bulk load costs one DISTINCT, not a trigger call per row). UPDATE is row-level, limited to the
    columns the figures read and filtered by WHEN, so the purge (which updates personal columns
    and purged_at only) never fires it. TRUNCATE marks everything stale.

    `zone` (`naive_zone`): the time zone lifecycle's sessions read a placed_at without a time
    zone in. The functions run in it, whatever zone the writing session has set, so a change is
    recorded on the day the builds date it.
    """
    o, i, s = src.o, src.i, src.statuses
    hour = "date_trunc('hour', {}, 'UTC')"
    pinned = "SET TimeZone = '{}' ".format(zone.replace("'", "''")) if zone is not None else ""
    header = (
        "RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
        f"SET search_path = pg_catalog, pg_temp {pinned}AS $fn$ BEGIN"
    )
    in_sales = "{row}." + o["status"] + f" IN ({s})"
    order_changed = " OR ".join(
        f"OLD.{o[c]} IS DISTINCT FROM NEW.{o[c]}"
        for c in ("placed_at", "customer_id", "ship_region")
    )
    item_changed = " OR ".join(
        f"OLD.{i[c]} IS DISTINCT FROM NEW.{i[c]}"
        for c in ("order_id", "sku", "quantity", "unit_price")
    )
    orders_when = (
        f"(({in_sales.format(row='OLD')}) IS DISTINCT FROM ({in_sales.format(row='NEW')})) OR "
        f"(({in_sales.format(row='OLD')} OR {in_sales.format(row='NEW')}) AND ({order_changed}))"
    )
    order_cols = ", ".join(o[c] for c in ("status", "placed_at", "customer_id", "ship_region"))
    item_cols = ", ".join(i[c] for c in ("order_id", "sku", "quantity", "unit_price"))
    old_and_new = f"(VALUES (OLD.{o['placed_at']}), (NEW.{o['placed_at']})) v(t)"
    return [
        f"""CREATE OR REPLACE FUNCTION lifecycle.sales_capture_orders_rows() {header}
            INSERT INTO lifecycle.sales_changes (hour)
            SELECT DISTINCT {hour.format("c." + o["placed_at"])} FROM changed_rows c
            WHERE c.{o["status"]} IN ({s}) AND c.{o["placed_at"]} IS NOT NULL ORDER BY 1;
            RETURN NULL; END $fn$""",
        f"""CREATE OR REPLACE FUNCTION lifecycle.sales_capture_orders_update() {header}
            INSERT INTO lifecycle.sales_changes (hour)
            SELECT DISTINCT {hour.format("t")} FROM {old_and_new}
            WHERE t IS NOT NULL;
            RETURN NULL; END $fn$""",
        f"""CREATE OR REPLACE FUNCTION lifecycle.sales_capture_items_rows() {header}
            INSERT INTO lifecycle.sales_changes (hour)
            SELECT DISTINCT {hour.format("o." + o["placed_at"])}
            FROM (SELECT DISTINCT {i["order_id"]} AS order_id FROM changed_rows) c
            JOIN {src.orders} o ON o.{o["order_id"]} = c.order_id
            WHERE o.{o["status"]} IN ({s}) AND o.{o["placed_at"]} IS NOT NULL ORDER BY 1;
            RETURN NULL; END $fn$""",
        f"""CREATE OR REPLACE FUNCTION lifecycle.sales_capture_items_update() {header}
            INSERT INTO lifecycle.sales_changes (hour)
            SELECT DISTINCT {hour.format("o." + o["placed_at"])} FROM {src.orders} o
            WHERE o.{o["order_id"]} IN (OLD.{i["order_id"]}, NEW.{i["order_id"]})
              AND o.{o["status"]} IN ({s}) AND o.{o["placed_at"]} IS NOT NULL;
            RETURN NULL; END $fn$""",
        f"""CREATE OR REPLACE FUNCTION lifecycle.sales_capture_truncate() {header}
            INSERT INTO lifecycle.sales_changes (hour) VALUES (NULL);
            RETURN NULL; END $fn$""",
        *_table_triggers("orders", src.orders, order_cols, orders_when),
        *_table_triggers("items", src.items, item_cols, item_changed),
    ]


_INSTALLED_TRIGGERS = sa.text(r"""
    SELECT t.tgname,
           t.tgrelid = to_regclass(:orders) OR t.tgrelid = to_regclass(:items) AS on_source,
           t.tgenabled = 'O' AS enabled,
           obj_description(to_regprocedure('lifecycle.sales_capture_orders_rows()'), 'pg_proc')
               AS signature
    FROM pg_trigger t
    WHERE t.tgname LIKE 'lifecycle\_sales\_%' AND NOT t.tgisinternal AND t.tgparentid = 0
""")
# Triggers of an earlier mapping (another table) are dropped before the current ones are created.
# On a partitioned table PostgreSQL clones each trigger onto every partition (`tgparentid` names
# the one it was cloned from); a clone belongs to its parent and goes when the parent is dropped,
# so both statements read the triggers that were created, never their clones.
_DROP_CAPTURE_TRIGGERS = r"""
DO $$ DECLARE t record; BEGIN
    FOR t IN SELECT tgname, tgrelid::regclass AS rel FROM pg_trigger
             WHERE tgname LIKE 'lifecycle\_sales\_%' AND NOT tgisinternal AND tgparentid = 0 LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
    END LOOP;
END $$"""


# The session's time zone when the mapped placed_at is a timestamp without one, else NULL.
_NAIVE_ZONE = sa.text("""
    SELECT CASE WHEN a.atttypid = 'timestamp'::regtype THEN current_setting('TimeZone') END
    FROM pg_attribute a
    WHERE a.attrelid = to_regclass(:orders) AND a.attname = :placed_at AND NOT a.attisdropped
""")


def naive_zone(conn: Connection, src: Source) -> str | None:
    """The zone this session reads the orders' placed_at in, when it is a timestamp without a
    time zone (a shop's own table may hold one); None for timestamptz, which needs no zone.

    A trigger runs in the writing session's zone. An application that sets another zone than
    lifecycle's sessions have (many drivers set the client's) had its change of a naive
    placed_at recorded at another hour than the builds date it: near midnight, on the neighbouring
    day, so the changed day was not rebuilt and kept a cancelled order's units."""
    placed_at = src.o["placed_at"].strip('"')
    zone = conn.execute(_NAIVE_ZONE, {"orders": src.orders_table, "placed_at": placed_at})
    return zone.scalar()


def capture_signature(policy: Policy, zone: str | None = None) -> str:
    """A short hash of the capture triggers this policy needs (in `zone`, see `naive_zone`);
    stored with the published days, so a change of either rebuilds everything."""
    ddl = _capture_ddl(Source(policy), zone)
    return hashlib.sha256("\n".join(ddl).encode()).hexdigest()[:16]


def ensure_capture(conn: Connection, src: Source, signature: str, zone: str | None = None) -> bool:
    """Installs the change-capture triggers (pinned to `zone`, see `naive_zone`) unless exactly
    these are in place; True if it had to."""
    tables = {"orders": src.orders_table, "items": src.items_table}
    rows = conn.execute(_INSTALLED_TRIGGERS, tables).all()
    present = {name for name, on_source, enabled, _ in rows if on_source and enabled}
    stored = {sig for *_, sig in rows}
    expected = {
        f"{CAPTURE_TRIGGER_PREFIX}{table}_{event}" for table in _TABLES for event in _EVENTS
    }
    if present == expected and len(rows) == len(expected) and stored == {signature}:
        return False
    conn.execute(sa.text(_DROP_CAPTURE_TRIGGERS))
    for statement in _capture_ddl(src, zone):
        conn.execute(sa.text(statement))
    conn.execute(
        sa.text(f"COMMENT ON FUNCTION lifecycle.sales_capture_orders_rows() IS '{signature}'")
    )
    return True


def ensure_capture_within_lock_timeout(
    conn: Connection, src: Source, signature: str, zone: str | None = None
) -> bool | None:
    """`ensure_capture`, waiting at most CAPTURE_LOCK_TIMEOUT_MS for the raw tables' locks in
    each of CAPTURE_ATTEMPTS attempts; None when another transaction held them throughout.

    The build can do without: every day is then rebuilt from the raw tables, which needs no
    record of changes, and the next build tries again. Waiting without a bound instead queued
    the shop's own reads and writes of its orders behind the trigger DDL for as long as the other
    transaction lasted, on a busy server for minutes."""
    before = conn.execute(sa.text("SELECT current_setting('lock_timeout')")).scalar_one()
    for attempt in range(CAPTURE_ATTEMPTS):
        if attempt:
            time.sleep(CAPTURE_PAUSE_S)
        try:
            with conn.begin_nested():  # a failed attempt rolls its setting back with it
                conn.execute(sa.text(f"SET LOCAL lock_timeout = {int(CAPTURE_LOCK_TIMEOUT_MS)}"))
                installed = ensure_capture(conn, src, signature, zone)
                conn.execute(_RESTORE_LOCK_TIMEOUT, {"before": before})
                return installed
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
    return None
