"""SQL identifiers a policy may name: checked against an allow-list, then quoted.

Table and column names come from policy.yaml and end up in SQL text, so every one passes
IDENTIFIER (lowercase letters, digits and _, at most 63 characters) before it is quoted.
"""

from __future__ import annotations

import re

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def quote_ident(name: str) -> str:
    """Quotes an identifier that has already passed the allow-list pattern."""
    if not IDENTIFIER.match(name):
        raise ValueError(f"not an allowed SQL identifier: {name!r}")
    return '"' + name + '"'


def column_names(value: tuple[str, ...]) -> tuple[str, ...]:
    """Validates a list of column names against the identifier allow-list."""
    bad = [v for v in value if not IDENTIFIER.match(v)]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a lowercase SQL column name")
    return value
