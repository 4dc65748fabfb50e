"""Online rewrite with pg_repack, where the shop database has it: the table is copied into a new
one while the shop keeps writing (changes are logged by a trigger and replayed), and locked
exclusively only briefly, to install the trigger and to swap the files. It copies only the rows
its snapshot sees, so cleared row versions are not carried over; heap, TOAST and indexes get new
files, and it analyzes the table at the end.

Used when both the `pg_repack` extension is installed in the shop database (`CREATE EXTENSION
pg_repack`, Debian's postgresql-15-repack) and its client is on the PATH; otherwise the erasure
uses VACUUM FULL. Its own waits are bounded by `--wait-timeout` with `--no-kill-backend`: a
conflicting session is never cancelled, the table is skipped and the erasure stays pending.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_INSTALLED = sa.text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_repack')")


class RepackError(RuntimeError):
    """pg_repack failed for a reason waiting will not fix."""


class RepackSkipped(RuntimeError):
    """pg_repack gave up waiting for a conflicting lock within the timeout; nothing changed."""


def available(conn: Connection) -> bool:
    """True when this database has the extension and the client is installed."""
    return shutil.which("pg_repack") is not None and bool(conn.execute(_INSTALLED).scalar())


def repack(url: sa.URL, table: str, timeout: int) -> None:
    """Rewrites `table` online. Raises RepackSkipped on a lock timeout, RepackError otherwise,
    with pg_repack's first error line only (a DETAIL line could quote a row)."""
    host = url.host or url.query.get("host")
    args = ["pg_repack", "--table", table, "--no-order", "--no-kill-backend"]
    args += ["--wait-timeout", str(timeout), "--no-superuser-check", "--dbname", url.database]
    if host:
        args += ["--host", str(host)]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", url.username]
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout * 20 + 600)
    output = done.stdout + done.stderr
    if "Skipping repack" in output or "timed out" in output:
        raise RepackSkipped(f"pg_repack of {table} did not get its lock within {timeout} s")
    if done.returncode != 0:
        first = next((line for line in output.splitlines() if "ERROR" in line), "no error line")
        raise RepackError(f"pg_repack of {table} failed (exit {done.returncode}): {first[:200]}")
