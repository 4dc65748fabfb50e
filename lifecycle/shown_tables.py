"""Tables a person reads in the UI (previews, inventories, queues), kept as cells, not as text.

The leak guard reads every string a run stores, and compares each with the raw zone token by
token, runs of up to twelve words included (lifecycle.guard.provenance). A table written as one
markdown text is one string whose runs of words cross its rows: tomorrow's rows in another order,
or one row more, make runs no clean pass has compared, and any such token has the raw zone hashed
whole that night (at 10M orders some 40 s). A table kept as cells is stored as one string per cell
(Dagster's table metadata), so its tokens are those of each cell, the same night after night for
the same skus, regions and relations, and a value in a cell is still compared whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def cell(value: object) -> str:
    """A cell as a person reads it: integers with thousands separators, None empty."""
    if value is None:
        return ""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class ShownTable:
    """Column names and rows of text cells; `numeric` columns align right when drawn as text."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: frozenset[int] = frozenset()

    @classmethod
    def of(
        cls, columns: Sequence[str], rows: Iterable[Sequence[object]], numeric: Iterable[int] = ()
    ) -> ShownTable:
        """The table of `rows` (any values), each cell formatted by `cell`."""
        return cls(
            tuple(columns), tuple(tuple(cell(v) for v in row) for row in rows), frozenset(numeric)
        )

    def markdown(self) -> str:
        """The table as markdown, for a terminal or a file (the UI gets the cells)."""
        lines = [
            "| " + " | ".join(self.columns) + " |",
            "|"
            + "|".join("---:" if n in self.numeric else "---" for n in range(len(self.columns)))
            + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)
