"""Metadata as the UI should show it: a list of ids or dates as one line of text.

Dagster shows a list value as JSON, one element per line, so a 20-id sample pushes the figures
that matter off the screen; as text (`3, 14, 34 (20 shown)`) it takes one line. Only the shape
changes: the values are the same counts, ids and dates the domain reported.
"""

from __future__ import annotations

from collections.abc import Mapping


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
