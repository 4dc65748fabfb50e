"""Which open snapshots make PostgreSQL keep the old row versions that a rewrite should drop.

A table rewrite (VACUUM FULL, a partition's VACUUM FULL) copies every row version that is not yet
removable: one whose deleting transaction is newer than the table's removal horizon. Since
PostgreSQL 14 (procarray.c, ComputeXidHorizons) that horizon, for an ordinary table, is the oldest of:

- the snapshot xmin and transaction id of every backend connected to *this* database;
- the transaction id of every running writing transaction in *any* database: the rewrite's own
  snapshot starts at the cluster's oldest running transaction id, and VACUUM FULL (unlike plain
  VACUUM) counts its own snapshot;
- prepared transactions (their transaction ids are running, cluster-wide);
- replication slots' `xmin` (a physical standby's hot_standby_feedback) and the feedback a
  walsender reports without a slot, which hold every database back;
- for system catalogs such as pg_statistic, also replication slots' `catalog_xmin`.

A read-only snapshot in another database (a `pg_dump` of another database, a REPEATABLE READ
report elsewhere) holds no transaction id and is not part of the horizon: it never blocks.
Lazy VACUUM workers are left out of the horizon by PostgreSQL itself, so they are not listed.

A holder blocks only if it is at least as old as the newest change to be erased (`newest_xid`):
the versions that change left are removable exactly when every part of the horizon is newer.
tests/db/test_erasure.py shows both sides with real transactions.

pg_repack is different: it copies only the rows its own MVCC snapshot sees, so no horizon makes it
keep a cleared version. It waits, unbounded, for the transactions of *this* database open when it
starts (its `virtualxid` query filters on `current_database()`); so before it only the holders in
this database are waited for (`this_database_only`), with the erasure's bounded timeout, and a
writer, a prepared transaction or a slot elsewhere on the server never delays it.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# age(x) >= age(newest) reads "x is the newest change's transaction or older". Ages are computed in
# one statement, so they are comparable; age(NULL) is NULL and never matches.
_HOLDERS = sa.text("""
    WITH newest AS (SELECT age(CAST(:newest_xid AS xid)) AS age)
    SELECT 'pid ' || a.pid || ' in this database ('
           || coalesce(nullif(a.application_name, ''), a.backend_type)
           || ', transaction open since '
           || coalesce(to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC', '?')
           || ')'
    FROM pg_stat_activity a, newest n
    WHERE a.pid <> pg_backend_pid() AND a.datname = current_database()
      AND (age(a.backend_xmin) >= n.age OR age(a.backend_xid) >= n.age)
      AND NOT (a.backend_type = 'autovacuum worker' AND a.query LIKE 'autovacuum: VACUUM%'
               AND a.query NOT LIKE '%ANALYZE%' AND a.backend_xid IS NULL)
    UNION ALL
    SELECT 'pid ' || a.pid || ' writing in database ' || coalesce(a.datname, '-') || ' ('
           || coalesce(nullif(a.application_name, ''), a.backend_type)
           || ', transaction open since '
           || coalesce(to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC', '?')
           || ')'
    FROM pg_stat_activity a, newest n
    WHERE NOT :this_database_only
      AND a.pid <> pg_backend_pid() AND a.datname IS DISTINCT FROM current_database()
      AND age(a.backend_xid) >= n.age
    UNION ALL
    SELECT 'standby feedback through walsender pid ' || a.pid
    FROM pg_stat_activity a, newest n
    WHERE NOT :this_database_only AND a.backend_type = 'walsender' AND age(a.backend_xmin) >= n.age
    UNION ALL
    SELECT 'prepared transaction ' || p.gid || ' in database ' || p.database
    FROM pg_prepared_xacts p, newest n
    WHERE age(p.transaction) >= n.age
      AND (NOT :this_database_only OR p.database = current_database())
    UNION ALL
    SELECT 'replication slot ' || s.slot_name
    FROM pg_replication_slots s, newest n
    WHERE NOT :this_database_only
      AND (age(s.xmin) >= n.age OR (:catalog AND age(s.catalog_xmin) >= n.age))
""")


def holders(
    conn: Connection, newest_xid: str, catalog: bool = False, this_database_only: bool = False
) -> list[str]:
    """What still holds back the removal of versions left by transaction `newest_xid` (and older):
    process ids, database and slot names, never a value. Empty means a rewrite now drops them all.
    `this_database_only` for pg_repack, which only this database's transactions can hold."""
    params = {
        "newest_xid": newest_xid,
        "catalog": catalog,
        "this_database_only": this_database_only,
    }
    return list(conn.execute(_HOLDERS, params).scalars().all())
