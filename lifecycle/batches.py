"""Work over a large table in bounded, committed batches of primary-key ranges.

The purge and the carrier hand-off both walk a table's primary key and handle each range in one
statement and one transaction: a run killed at any point keeps every committed batch whole and
the next run picks up the rest; no transaction holds more than one batch of row locks. The
ranges are found by a keyset walk (`OFFSET batch_size - 1 LIMIT 1` past the previous bound), so
sparse ids cost nothing and nothing is rescanned; together they cover every bigint, so a row
whose id lies outside the table's current ids (a hand-off row of a deleted order) still falls in
one range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.orders import MAX_BIGINT

T = TypeVar("T")


def keyset_bound_sql(table_sql: str, id_sql: str, where: str = "") -> str:
    """The statement that finds the next range's upper bound: params `after` and `skip`.

    `where` narrows the walk to the rows the batches can change (with a matching partial index
    the walk then costs what is left to do, not the table's size).
    """
    condition = f"{id_sql} > :after" + (f" AND ({where})" if where else "")
    return f"SELECT {id_sql} FROM {table_sql} o WHERE {condition} ORDER BY {id_sql} OFFSET :skip LIMIT 1"


def run_in_batches(
    engine: Engine,
    bound_sql: str,
    batch_size: int,
    batch: Callable[[Connection, int, int], T],
    before_batch: Callable[[Connection], None] | None = None,
    bound_params: dict | None = None,
) -> Iterator[T]:
    """Yields `batch(conn, after, upto)` for each range (after, upto], each in its own transaction.

    `before_batch` runs first in each transaction (e.g. an advisory lock that lets concurrent
    walkers take turns); `bound_params` are what the walk's `where` names besides the bounds.
    The caller consumes the iterator; stopping early stops the walk.
    """
    bound = sa.text(bound_sql)
    after = -MAX_BIGINT - 1
    while after < MAX_BIGINT:
        with engine.begin() as conn:
            if before_batch is not None:
                before_batch(conn)
            upto = conn.execute(
                bound, {**(bound_params or {}), "after": after, "skip": batch_size - 1}
            ).scalar()
            upto = MAX_BIGINT if upto is None else upto
            result = batch(conn, after, upto)
        yield result
        after = upto
