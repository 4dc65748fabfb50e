"""Metadata as the UI should show it: a list of ids or dates as one line of text, a table as cells.

Dagster shows a list value as JSON, one element per line, so a 20-id sample pushes the figures
that matter off the screen; as text (`3, 14, 34 (20 shown)`) it takes one line. A table the
domain drew (lifecycle.shown_tables) becomes Dagster's table metadata, stored one string per cell.
Only the shape changes: the values are the same counts, ids and dates the domain reported.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from lifecycle.shown_tables import ShownTable


def _line(values: list | tuple) -> str:
    return ", ".join(str(v) for v in values) if values else "none"


def compact(metadata: Mapping[str, object]) -> dict[str, object]:
    """Lists of scalars, and mappings of such lists, become one text line each."""
    out: dict[str, object] = {}
    for key, value in metadata.items():
        # Exact types: Dagster's own metadata values are records (tuples) and are left alone.
        if type(value) in (list, tuple) and all(not isinstance(v, dict | list) for v in value):
            out[key] = _line(value)
        elif (
            isinstance(value, Mapping)
            and value
            and all(type(v) in (list, tuple) for v in value.values())
        ):
            out[key] = "; ".join(f"{k}: {_line(v)}" for k, v in value.items())
        else:
            out[key] = value
    return out


def table(shown: ShownTable) -> dg.TableMetadataValue:
    """The domain's table as Dagster's table metadata: one text column per column, cells as text."""
    return dg.MetadataValue.table(
        records=[dg.TableRecord(dict(zip(shown.columns, row, strict=True))) for row in shown.rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(name, "string") for name in shown.columns]),
    )
