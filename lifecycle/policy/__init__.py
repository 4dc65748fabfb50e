"""The privacy policy file: parsed, validated and fingerprinted.

Every rule the project applies comes from here, so an operator who asks "why was this order
cleared?" reads policy.yaml and the ledger row that names its version and hash. One module per
section (raw, retention, analytics, requests, logistics); `model` composes them, `loading` reads
the file, `database` holds it against the live schema.
"""

from lifecycle.policy.analytics import Analytics
from lifecycle.policy.database import check_policy_against_database
from lifecycle.policy.errors import PolicyError
from lifecycle.policy.identifiers import IDENTIFIER, column_names, quote_ident
from lifecycle.policy.loading import load_policy, parse_policy
from lifecycle.policy.logistics import (
    CARRIER_ROLE_PREFIX,
    LOGISTICS_FIELDS,
    LOGISTICS_KEYS,
    Carrier,
    Logistics,
)
from lifecycle.policy.model import Policy
from lifecycle.policy.raw import DEFAULT_PERSONAL, DEFAULT_TABLES, ROLES, RawTable, RawZone
from lifecycle.policy.requests import DataRequests
from lifecycle.policy.retention import Retention

__all__ = [
    "CARRIER_ROLE_PREFIX",
    "DEFAULT_PERSONAL",
    "DEFAULT_TABLES",
    "IDENTIFIER",
    "LOGISTICS_FIELDS",
    "LOGISTICS_KEYS",
    "ROLES",
    "Analytics",
    "Carrier",
    "DataRequests",
    "Logistics",
    "Policy",
    "PolicyError",
    "RawTable",
    "RawZone",
    "Retention",
    "check_policy_against_database",
    "column_names",
    "load_policy",
    "parse_policy",
    "quote_ident",
]
