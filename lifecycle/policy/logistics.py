"""What goes to the carriers that deliver the parcels, and how each carrier receives it."""

from __future__ import annotations

import difflib

from pydantic import Field, field_validator, model_validator

from lifecycle.policy.base import Strict
from lifecycle.policy.identifiers import IDENTIFIER
from lifecycle.policy.raw import DEFAULT_PERSONAL, ROLES

# All a carrier may ever receive (privacy statement: "only ... necessary receiving address and
# logistics contact information"); order_id and carrier always go with it. docs/logistics.md.
LOGISTICS_FIELDS = (
    "receiver_name",
    "receiver_address",
    "receiver_postcode",
    "receiver_phone",
    "ship_region",
)
LOGISTICS_KEYS = ("order_id", "carrier")
CARRIER_ROLE_PREFIX = "lifecycle_carrier_"


class Carrier(Strict):
    """How one matched carrier receives its deliveries: a database role and/or a CSV file."""

    role: bool = False
    csv: bool = False

    @model_validator(mode="after")
    def _receives_something(self) -> Carrier:
        if not (self.role or self.csv):
            raise ValueError(
                "receives nothing; set role: true and/or csv: true, or remove the carrier"
            )
        return self


class Logistics(Strict):
    """What goes to the carriers that deliver the parcels, and how each carrier receives it."""

    fields: tuple[str, ...] = LOGISTICS_FIELDS
    carriers: dict[str, Carrier] = {}
    batch_size: int = Field(50_000, ge=1, le=1_000_000)

    @field_validator("fields")
    @classmethod
    def _only_delivery_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        refused = [f for f in value if f not in LOGISTICS_FIELDS + LOGISTICS_KEYS]
        if refused:
            known = set(ROLES["orders"]) | set(
                DEFAULT_PERSONAL["orders"]
            )  # refused on purpose, not typos
            hints = [
                [] if f in known else difflib.get_close_matches(f, LOGISTICS_FIELDS, n=1)
                for f in refused
            ]
            named = ", ".join(
                repr(f) + (f" (did you mean '{h[0]}'?)" if h else "")
                for f, h in zip(refused, hints, strict=True)
            )
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
