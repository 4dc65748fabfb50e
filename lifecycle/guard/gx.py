"""The guard's rules as Great Expectations 1.x suites over the shop's PostgreSQL, counts only.

The nightly counts rule breaks with one SQL statement per relation (lifecycle.guard.counts): GX's
start-up costs seconds the counts do not. This wrapper runs the same rules as GX suites, one per
relation, for whoever wants GX's validation results as evidence (dagster-ge pins
great-expectations below 1.0, hence a wrapper of our own). GX's default result format lists unexpected values;
RESULT_FORMAT asks for counts only (its values query then runs with LIMIT 0), unexpected-row
queries select a constant, and the data context is ephemeral and in memory: nothing GX sees is
kept, sent (analytics off) or written to disk.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Iterator
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.guard.counts import Rule

_PLAIN = re.compile(r"[a-z_][a-z0-9_]*")
RESULT_FORMAT = {
    "result_format": "BASIC",
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}
# Result keys that would carry values; the wrapper refuses a result holding any of them.
_VALUE_KEYS = (
    "partial_unexpected_list",
    "partial_unexpected_counts",
    "partial_unexpected_index_list",
    "unexpected_list",
    "unexpected_index_list",
    "unexpected_rows",
    "details",
)


class GxValueLeak(RuntimeError):
    """Great Expectations returned values despite RESULT_FORMAT; the guard stops rather than pass
    them on."""


@lru_cache(maxsize=1)
def great_expectations():
    """The GX package, imported on first use: it takes about two seconds the CLI need not always
    pay."""
    import great_expectations as gx

    return gx


def _context():
    gx = great_expectations()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _expectation(rule: Rule):
    gx = great_expectations()
    meta = {"column": rule.column, "kind": rule.kind}
    if rule.regex is not None:
        return gx.expectations.ExpectColumnValuesToNotMatchRegex(
            column=rule.column, regex=rule.regex, meta=meta
        )
    return gx.expectations.UnexpectedRowsExpectation(
        unexpected_rows_query=rule.unexpected_rows_query(), meta=meta
    )


def _refuse_values(result):
    """The suite's result, unless an item carries values despite RESULT_FORMAT."""
    for item in result.results:
        found = item.result or {}
        if any(found.get(key) for key in _VALUE_KEYS):
            raise GxValueLeak(
                f"Great Expectations returned unexpected values for "
                f"{item.expectation_config.type}; refusing to use the result "
                "(check RESULT_FORMAT in lifecycle/guard/gx.py)"
            )
    return result


def results(
    engine: Engine, schema: str, suites: dict[str, Iterable[Rule]]
) -> Iterator[tuple[str, object]]:
    """(relation, GX suite validation result, or the exception that stopped it), relation by
    relation."""
    gx = great_expectations()
    context = _context()
    url = engine.url.render_as_string(hide_password=False).replace("$", r"\$")
    with warnings.catch_warnings():
        # GX suggests its postgres source, which rejects socket URLs.
        warnings.simplefilter("ignore")
        # The schema goes on the connection (search_path), as GX 1.x wants it rather than per asset.
        source = context.data_sources.add_sql(
            name="shop",
            connection_string=url,
            kwargs={
                "poolclass": sa.pool.NullPool,
                "connect_args": {"options": f"-c search_path={schema}"},
            },
        )
    for relation, rules in suites.items():
        rules = list(rules)
        if not rules:
            continue
        # GX quotes nothing itself: a name such as "Q3 Export" is passed quoted, as GX documents.
        table = relation if _PLAIN.fullmatch(relation) else '"' + relation.replace('"', '""') + '"'
        try:
            asset = source.add_table_asset(name=relation, table_name=table)
            batch = asset.add_batch_definition_whole_table("whole").get_batch()
            suite = gx.ExpectationSuite(
                name=f"guard_{relation}", expectations=[_expectation(r) for r in rules]
            )
            yield relation, _refuse_values(batch.validate(suite, result_format=RESULT_FORMAT))
        except Exception as exc:  # noqa: BLE001 - one unreadable relation must not hide the others
            yield relation, exc
