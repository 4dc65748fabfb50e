"""The privacy policy file: parsed, validated and fingerprinted.

Every rule the purge applies comes from here, so an operator who asks "why was this order
cleared?" reads policy.yaml and the ledger row that names its version and hash.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Logical roles of each raw table's columns. A shop maps each role to its own column name;
# the reference schema uses the role names themselves.
ROLES: dict[str, tuple[str, ...]] = {
    "orders": (
        "order_id", "customer_id", "status", "placed_at", "paid_at", "shipped_at",
        "delivered_at", "cancelled_at", "ship_region", "purged_at", "carrier",
    ),
    "order_items": ("order_id", "line_no", "sku", "quantity", "unit_price"),
    "after_sales_cases": ("case_id", "order_id", "kind", "opened_at", "closed_at"),
}
DEFAULT_TABLES = {name: f"shop.{name}" for name in ROLES}
DEFAULT_PERSONAL = {
    "orders": ["receiver_name", "receiver_phone", "receiver_email", "receiver_address",
               "receiver_postcode", "payment_ref"],
    "order_items": [],
    "after_sales_cases": ["note"],
}


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file, the field and the fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RawTable(_Strict):
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


class RawZone(_Strict):
    """The shop's own tables, with the reference schema as default."""

    orders: RawTable
    order_items: RawTable
    after_sales_cases: RawTable

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        data = dict(data or {})
        unknown = set(data) - set(ROLES)
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
            spec.setdefault("table", DEFAULT_TABLES[name])
            spec.setdefault("personal_columns", DEFAULT_PERSONAL[name])
            data[name] = spec
        return data

    def tables(self) -> dict[str, RawTable]:
        return {"orders": self.orders, "order_items": self.order_items,
                "after_sales_cases": self.after_sales_cases}


class Retention(_Strict):
    """How long personal fields stay bound to an order, and how the purge runs."""

    after_sales_window_days: int = Field(30, ge=0)
    cancelled_retention_days: int = Field(30, ge=0)
    abandoned_after_days: int = Field(90, ge=0)
    stale_in_service_days: int = Field(60, ge=0)
    batch_size: int = Field(50_000, ge=1, le=1_000_000)
    physical_erasure: Literal["vacuum_full", "none"] = "vacuum_full"
    erasure_lock_timeout_seconds: int = Field(30, ge=1, le=3600)


class Analytics(_Strict):
    """How sales are dated and how small cells are protected in the published sales volume."""

    timezone: str = "UTC"
    min_customers_per_cell: int = 5

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                "not an IANA time zone; write one such as 'Asia/Shanghai', 'Europe/Berlin' or 'UTC'"
            ) from None
        return value

    @field_validator("min_customers_per_cell")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be a whole number of customers, 1 or more")
        return value


class DataRequests(_Strict):
    """How customers' access, correction and erasure requests are answered (docs/requests.md)."""

    response_deadline_days: int = Field(15, gt=0, le=365)
    correctable_columns: tuple[str, ...] = (
        "receiver_name", "receiver_phone", "receiver_email", "receiver_address", "receiver_postcode")
    export_retention_days: int = Field(30, gt=0, le=3650)

    @field_validator("correctable_columns")
    @classmethod
    def _identifiers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return column_names(value)


# All a carrier may ever receive (privacy statement: "only ... necessary receiving address and
# logistics contact information"); order_id and carrier always go with it. docs/logistics.md.
LOGISTICS_FIELDS = ("receiver_name", "receiver_address", "receiver_postcode", "receiver_phone", "ship_region")
LOGISTICS_KEYS = ("order_id", "carrier")
CARRIER_ROLE_PREFIX = "lifecycle_carrier_"


class Carrier(_Strict):
    """How one matched carrier receives its deliveries: a database role and/or a CSV file."""

    role: bool = False
    csv: bool = False

    @model_validator(mode="after")
    def _receives_something(self) -> "Carrier":
        if not (self.role or self.csv):
            raise ValueError("receives nothing; set role: true and/or csv: true, or remove the carrier")
        return self


class Logistics(_Strict):
    """What goes to the carriers that deliver the parcels, and how each carrier receives it."""

    fields: tuple[str, ...] = LOGISTICS_FIELDS
    carriers: dict[str, Carrier] = {}
    batch_size: int = Field(50_000, ge=1, le=1_000_000)

    @field_validator("fields")
    @classmethod
    def _only_delivery_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        refused = [f for f in value if f not in LOGISTICS_FIELDS + LOGISTICS_KEYS]
        if refused:
            known = set(ROLES["orders"]) | set(DEFAULT_PERSONAL["orders"])  # refused on purpose, not typos
            hints = [[] if f in known else difflib.get_close_matches(f, LOGISTICS_FIELDS, n=1) for f in refused]
            named = ", ".join(repr(f) + (f" (did you mean '{h[0]}'?)" if h else "") for f, h in zip(refused, hints))
            raise ValueError(
                f"{named} may not go to carriers: only the receiving address and logistics contact may "
                f"({', '.join(LOGISTICS_FIELDS)}), always with order_id and carrier; remove {'them' if len(refused) > 1 else 'it'} from logistics.fields"
            )
        return tuple(dict.fromkeys(f for f in value if f in LOGISTICS_FIELDS))

    @field_validator("carriers")
    @classmethod
    def _carrier_names(cls, value: dict[str, Carrier]) -> dict[str, Carrier]:
        longest = 63 - len(CARRIER_ROLE_PREFIX)
        bad = [name for name in value if not IDENTIFIER.match(name) or len(name) > longest]
        if bad:
            raise ValueError(
                f"{bad[0]!r} is not a usable carrier name; write it as shop.orders.carrier holds it, in "
                f"lowercase letters, digits and _ (at most {longest} characters), e.g. sf_express"
            )
        return value

    @property
    def role_carriers(self) -> list[str]:
        return [name for name, how in self.carriers.items() if how.role]

    @property
    def csv_carriers(self) -> list[str]:
        return [name for name, how in self.carriers.items() if how.csv]


class Policy(_Strict):
    """A validated policy, with the file it came from and its content hash.

    One section per concern; a new capability adds its section model above and one field here.
    """

    version: str = Field(min_length=1)
    raw: RawZone = Field(default_factory=lambda: RawZone.model_validate({}))
    retention: Retention = Retention()
    analytics: Analytics = Analytics()
    requests: DataRequests = DataRequests()
    logistics: Logistics = Logistics()

    _path: Path = PrivateAttr(default=Path("policy.yaml"))
    _sha256: str = PrivateAttr(default="")

    @property
    def path(self) -> Path:
        return self._path

    @property
    def sha256(self) -> str:
        return self._sha256

    @property
    def short_hash(self) -> str:
        return self._sha256[:12]

    @field_validator("requests")
    @classmethod
    def _correctable_are_personal(cls, value: DataRequests, info) -> DataRequests:
        raw = info.data.get("raw")
        personal = raw.orders.personal_columns if raw else value.correctable_columns
        stray = [col for col in value.correctable_columns if col not in personal]
        if stray:
            raise ValueError(
                f"correctable_columns: {stray[0]!r} is not one of raw.orders.personal_columns "
                f"{list(personal)}; only the order's receiving contact and address can be corrected"
            )
        return value


_FIXES = {
    "greater_than_equal": "use a whole number of days, 0 or more",
    "extra_forbidden": "remove it or check its spelling against docs/policy.md",
    "missing": "add it (see docs/policy.md)",
    "int_parsing": "write a whole number",
    "int_from_float": "write a whole number",
    "literal_error": "use one of the listed values",
}


def _describe(path: Path, err: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    got = err.get("input")
    got_text = f" (got {got!r})" if isinstance(got, (int, float, str)) and err["type"] != "missing" else ""
    fix = _FIXES.get(err["type"])
    msg = err["msg"].removeprefix("Value error, ")
    return f"{path.name}: {where}: {msg}{got_text}" + (f"; {fix}" if fix else "")


def parse_policy(text: str, path: Path) -> Policy:
    """Validates policy text; raises PolicyError naming the file, field and fix for each problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "somewhere"
        raise PolicyError([f"{path.name}: {where}: not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    if not isinstance(data, dict):
        raise PolicyError([f"{path.name}: (top level): expected a mapping with version, raw and retention"])
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError([_describe(path, e) for e in exc.errors()]) from None
    policy._path = path
    policy._sha256 = hashlib.sha256(text.encode()).hexdigest()
    return policy


def load_policy(path: Path) -> Policy:
    """Reads and validates the policy file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError([f"{path}: file not found; set LIFECYCLE_POLICY or create policy.yaml"]) from None
    return parse_policy(text, path)


_CATALOG_SQL = """
SELECT table_schema || '.' || table_name AS table, column_name, is_nullable = 'YES' AS nullable
FROM information_schema.columns
WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
"""


def check_policy_against_database(policy: Policy, conn) -> None:
    """Fails unless every table and column the policy names exists in the connected database."""
    catalog: dict[str, set[str]] = {}
    not_null: set[tuple[str, str]] = set()
    for table, column, nullable in conn.exec_driver_sql(_CATALOG_SQL):
        catalog.setdefault(table, set()).add(column)
        if not nullable:
            not_null.add((table, column))
    problems = []
    for name, spec in policy.raw.tables().items():
        if spec.table not in catalog:
            hint = difflib.get_close_matches(spec.table, list(catalog), n=1)
            problems.append(
                f"{policy.path.name}: raw.{name}.table: table '{spec.table}' not found in the database"
                + (f" (did you mean '{hint[0]}'?)" if hint else "")
                + "; run `lifecycle db upgrade` or map the shop's table name"
            )
            continue
        present = catalog[spec.table]
        unused = set() if policy.logistics.carriers else {"carrier"}  # only the carrier hand-off reads it
        named = [("columns", c) for role, c in spec.columns.items() if role not in unused]
        named += [("personal_columns", c) for c in spec.personal_columns]
        named += [("kept_columns", c) for c in spec.kept_columns]
        for field, column in named:
            if column not in present:
                hint = difflib.get_close_matches(column, sorted(present), n=1)
                problems.append(
                    f"{policy.path.name}: raw.{name}.{field}: column '{column}' not in {spec.table}"
                    + (f" (did you mean '{hint[0]}'?)" if hint else "")
                )
        for column in spec.personal_columns:
            if (spec.table, column) in not_null:
                problems.append(
                    f"{policy.path.name}: raw.{name}.personal_columns: column '{column}' of {spec.table} "
                    "is NOT NULL, so the purge cannot clear it; make it nullable "
                    f"(ALTER TABLE {spec.table} ALTER COLUMN {column} DROP NOT NULL)"
                )
        overlap = set(spec.personal_columns) & set(spec.columns.values())
        if overlap:
            problems.append(
                f"{policy.path.name}: raw.{name}.personal_columns: {sorted(overlap)} also play a role "
                "the purge needs (an id, status or timestamp); they cannot be cleared"
            )
    if problems:
        raise PolicyError(problems)
