"""What every benchmark shares: a throw-away database, a timer with peak memory, a results file.

Benchmarks are scripts, never timed tests: they print a table and rewrite their own section of
bench/RESULTS.md (between `<!-- bench:NAME -->` markers) so the figures and the command that made
them stay together.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import time
import tracemalloc
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from lifecycle import db, schema
from lifecycle.settings import Settings

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def fresh_database(name: str) -> sa.Engine:
    """A new, migrated database `name` on the configured server (embedded by default)."""
    settings = Settings.from_env()
    if settings.database_url:
        admin = db.normalise_url(settings.database_url)
    else:
        admin = db.normalise_url(db.start_embedded_server(settings.embedded_data_dir))
    db.drop_database(admin, name)
    db.ensure_database(admin, name)
    engine = db.create_engine(admin.set(database=name))
    schema.upgrade(engine)
    return engine


def server_version(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.text("SHOW server_version")).scalar()


@dataclass
class Measurement:
    label: str
    seconds: float
    python_peak_mb: float
    rss_peak_mb: float
    rows: int | None = None

    @property
    def rows_per_second(self) -> float | None:
        return self.rows / self.seconds if self.rows and self.seconds else None


@dataclass
class Bench:
    """Collects measurements of one benchmark and writes them to RESULTS.md."""

    name: str
    command: str
    measurements: list[Measurement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @contextmanager
    def measure(self, label: str, rows: int | None = None):
        """Times the block and records Python's peak allocation and the process peak RSS."""
        tracemalloc.start()
        started = time.perf_counter()
        box: dict = {"rows": rows}
        try:
            yield box
        finally:
            seconds = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            m = Measurement(label, seconds, peak / 2**20, rss, box.get("rows"))
            self.measurements.append(m)
            rate = f"{m.rows_per_second:,.0f} rows/s" if m.rows_per_second else ""
            print(f"  {label:<58} {seconds:8.3f} s  py-peak {m.python_peak_mb:6.1f} MB  {rate}")

    def seconds(self, label: str) -> float:
        return next(m.seconds for m in self.measurements if m.label == label)

    def best(self, prefix: str) -> float:
        """The fastest of the measurements whose label starts with `prefix` (repeated runs)."""
        return min(m.seconds for m in self.measurements if m.label.startswith(prefix))

    def ratio(self, ours: str, reference: str) -> float:
        """How many times the reference's time ours took (1.0 = as fast as the hand-written SQL)."""
        return self.seconds(ours) / self.seconds(reference)

    def write(self, engine: sa.Engine) -> None:
        """Rewrites this benchmark's section of bench/RESULTS.md."""
        lines = [
            f"<!-- bench:{self.name} -->",
            f"### {self.name}",
            "",
            f"Command: `{self.command}`  ",
            f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
            f"PostgreSQL {server_version(engine)}, Python {platform.python_version()}.",
            "",
            "| step | seconds | rows/s | Python peak MB | process peak RSS MB |",
            "|---|---:|---:|---:|---:|",
        ]
        for m in self.measurements:
            rate = f"{m.rows_per_second:,.0f}" if m.rows_per_second else ""
            lines.append(
                f"| {m.label} | {m.seconds:.3f} | {rate} | {m.python_peak_mb:.1f} | {m.rss_peak_mb:.0f} |"
            )
        lines += [""] + [f"- {n}" for n in self.notes] + ["", f"<!-- /bench:{self.name} -->"]
        section = "\n".join(lines)
        text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
        pattern = re.compile(
            rf"<!-- bench:{re.escape(self.name)} -->.*?<!-- /bench:{re.escape(self.name)} -->", re.S
        )
        text = (
            pattern.sub(lambda _: section, text)
            if pattern.search(text)
            else text.rstrip() + "\n\n" + section + "\n"
        )
        RESULTS.write_text(text)


def load_note(load_at_start: float) -> str:
    """A note on the machine's load over a run: its 2 cores are shared with other work, which
    moves single timings by tens of percent."""
    return (
        f"Load average {load_at_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on "
        f"{os.cpu_count()} cores shared with other work."
    )


def vacuum_analyze(engine: sa.Engine, *tables: str) -> None:
    """Settles the tables (hint bits, statistics) so both contenders start from the same state."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"VACUUM ANALYZE {', '.join(tables)}"))


def run_sql(engine: sa.Engine, sql: str, params: dict | None = None) -> int:
    """Runs one statement in its own transaction and returns its row count."""
    with engine.begin() as conn:
        return conn.execute(sa.text(sql), params or {}).rowcount
