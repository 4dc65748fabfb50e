"""The shop's optional product catalogue: which product line each sku belongs to.

Non-personal. The planning tables roll a sku whose cells are too small up to its product line;
without a catalogue every sku rolls up into one line, `ALL`.
"""

from __future__ import annotations

from pydantic import field_validator

from lifecycle.policy.base import Strict
from lifecycle.policy.identifiers import IDENTIFIER, quote_ident

CATALOGUE_ROLES = ("sku", "product_line")


class Catalogue(Strict):
    """Where the sku → product line mapping is, and which column plays which role."""

    table: str = "shop.products"
    columns: dict[str, str] = {role: role for role in CATALOGUE_ROLES}

    @field_validator("table")
    @classmethod
    def _schema_qualified(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 2 or not all(IDENTIFIER.match(p) for p in parts):
            raise ValueError(
                f"'{value}' is not a schema-qualified lowercase table name; write it as schema.table"
            )
        return value

    @field_validator("columns")
    @classmethod
    def _roles(cls, value: dict[str, str]) -> dict[str, str]:
        extra = set(value) - set(CATALOGUE_ROLES)
        if extra:
            raise ValueError(f"unknown role(s) {sorted(extra)}; roles are {list(CATALOGUE_ROLES)}")
        bad = [c for c in value.values() if not isinstance(c, str) or not IDENTIFIER.match(c)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a lowercase SQL column name")
        return {role: value.get(role, role) for role in CATALOGUE_ROLES}

    @property
    def sql(self) -> str:
        """The quoted, schema-qualified name, safe to place in SQL text."""
        schema, name = self.table.split(".")
        return f"{quote_ident(schema)}.{quote_ident(name)}"

    def col(self, role: str) -> str:
        """The quoted column that plays `role` in this shop."""
        return quote_ident(self.columns[role])
