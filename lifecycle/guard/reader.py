"""The guard's reader: the connection over which every analytics value is read.

Whoever can create a view in `analytics` decides what code runs when it is read: a view may call
its author's own function, and that function runs with the rights of the reader. Read as the
nightly job's user, it could read the whole raw zone. `SET ROLE` inside the job's session does
not help (the planted code can `RESET ROLE`), so the guard logs in as `lifecycle_guard_reader`
(migration 0040): a member of `lifecycle_analyst` and nothing else, whose session has no other
role to return to. Anything the planted code does, it does with an analyst's rights; what it
cannot read is refused, and the guard reports the refusal as a finding for that relation.

The job's own connection computes the raw zone's digests and compares them with the digests the
reader brought back: it never executes anything an analytics author wrote.
"""

from __future__ import annotations

from functools import cache

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

READER_ROLE = "lifecycle_guard_reader"
# Only the catalog on the path: a function or operator planted in a schema cannot shadow the
# built-ins the guard's own statements call (the HMAC pads are bound into them).
_OPTIONS = "-c search_path=pg_catalog,pg_temp -c default_transaction_read_only=on"


def reader_url(job_url: URL, password: str | None = None) -> URL:
    """The job's database and server, logged in as the reader (with `password`, if the server
    asks for one: LIFECYCLE_GUARD_READER_PASSWORD)."""
    return job_url.set(username=READER_ROLE, password=password)


@cache
def _engine(url: str) -> Engine:
    return sa.create_engine(url, pool_pre_ping=True, connect_args={"options": _OPTIONS})


def reader_engine(job_engine: Engine, password: str | None = None) -> Engine:
    """An engine on the job's database that logs in as the reader; one per URL, shared."""
    url = reader_url(job_engine.url, password)
    return _engine(url.render_as_string(hide_password=False))
