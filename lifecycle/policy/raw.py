"""The raw zone: the shop's own tables, which column plays which role, which columns are personal."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator, model_validator

from lifecycle.policy.base import Strict
from lifecycle.policy.catalogue import Catalogue
from lifecycle.policy.identifiers import IDENTIFIER, column_names, quote_ident

# Logical roles of each raw table's columns. A shop maps each role to its own column name;
# the reference schema uses the role names themselves.
ROLES: dict[str, tuple[str, ...]] = {
    "orders": (
        "order_id",
        "customer_id",
        "status",
        "placed_at",
        "paid_at",
        "shipped_at",
        "delivered_at",
        "cancelled_at",
        "ship_region",
        "purged_at",
        "carrier",
    ),
    "order_items": ("order_id", "line_no", "sku", "quantity", "unit_price"),
    "after_sales_cases": ("case_id", "order_id", "kind", "opened_at", "closed_at"),
}
DEFAULT_TABLES = {name: f"shop.{name}" for name in ROLES}
DEFAULT_PERSONAL = {
    "orders": [
        "receiver_name",
        "receiver_phone",
        "receiver_email",
        "receiver_address",
        "receiver_postcode",
        "payment_ref",
    ],
    "order_items": [],
    "after_sales_cases": ["note"],
}


class RawTable(Strict):
    """One raw table: where it is, which column plays which role, which columns are personal."""

    table: str
    columns: dict[str, str]
    personal_columns: tuple[str, ...]
    kept_columns: tuple[str, ...] = ()

    @field_validator("table")
    @classmethod
    def _schema_qualified(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 2 or not all(IDENTIFIER.match(p) for p in parts):
            raise ValueError(
                f"'{value}' is not a schema-qualified lowercase table name; write it as schema.table"
            )
        return value

    @field_validator("personal_columns", "kept_columns")
    @classmethod
    def _identifiers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return column_names(value)

    @property
    def schema(self) -> str:
        return self.table.split(".")[0]

    @property
    def name(self) -> str:
        return self.table.split(".")[1]

    @property
    def sql(self) -> str:
        """The quoted, schema-qualified name, safe to place in SQL text."""
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    def col(self, role: str) -> str:
        """The quoted column that plays `role` in this shop."""
        return quote_ident(self.columns[role])


def _distinct_roles(table: str, columns: dict[str, str]) -> None:
    """Two roles on one column would let the purge write a timestamp over business data."""
    by_column: dict[str, list[str]] = {}
    for role, column in columns.items():
        by_column.setdefault(column, []).append(role)
    clashes = {column: roles for column, roles in by_column.items() if len(roles) > 1}
    if clashes:
        column, roles = next(iter(clashes.items()))
        raise ValueError(
            f"{table}.columns: roles {' and '.join(repr(r) for r in roles)} both map to column "
            f"{column!r}; each role needs its own column (a role left out maps to its own name)"
        )


class RawZone(Strict):
    """The shop's own tables, with the reference schema as default."""

    orders: RawTable
    order_items: RawTable
    after_sales_cases: RawTable
    catalogue: Catalogue | None = None  # optional, non-personal: sku -> product line

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        data = dict(data or {})
        unknown = set(data) - set(ROLES) - {"catalogue"}
        if unknown:
            raise ValueError(f"unknown raw table(s) {sorted(unknown)}; known: {sorted(ROLES)}")
        for name, roles in ROLES.items():
            spec = dict(data.get(name) or {})
            given = dict(spec.get("columns") or {})
            extra = set(given) - set(roles)
            if extra:
                raise ValueError(
                    f"{name}.columns: unknown role(s) {sorted(extra)}; roles are {list(roles)}"
                )
            bad = [c for c in given.values() if not isinstance(c, str) or not IDENTIFIER.match(c)]
            if bad:
                raise ValueError(f"{name}.columns: {bad[0]!r} is not a lowercase SQL column name")
            spec["columns"] = {role: given.get(role, role) for role in roles}
            _distinct_roles(name, spec["columns"])
            spec.setdefault("table", DEFAULT_TABLES[name])
            spec.setdefault("personal_columns", DEFAULT_PERSONAL[name])
            if name == "orders" and not spec["personal_columns"]:
                raise ValueError(
                    "orders.personal_columns is empty, so the purge would mark orders cleared while "
                    "keeping every personal field; list the columns that hold receiving name, "
                    "contact, address and payment reference (docs/policy.md)"
                )
            data[name] = spec
        return data

    def tables(self) -> dict[str, RawTable]:
        return {
            "orders": self.orders,
            "order_items": self.order_items,
            "after_sales_cases": self.after_sales_cases,
        }
