"""What a request may carry: its kind and payload checked, the reason a bad one is rejected,
and what is kept of a payload once answered (field names and order ids, never a value)."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from typing import Any

from lifecycle.orders import MAX_BIGINT
from lifecycle.policy import IDENTIFIER, Policy
from lifecycle.requests.table import KINDS

MAX_VALUE_LENGTH = 500
MAX_ORDER_IDS = 1000
# A correction's payload is an object of fields and a list of ids: two levels deep, a few KB. The
# bounds leave room for that and refuse, before any parsing, what would exhaust the parser.
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_PAYLOAD_DEPTH = 8


class RequestInputError(ValueError):
    """A request that cannot be answered as sent: `code` for counting, message for the reader."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


def visible(value: str) -> bool:
    """Whether the text holds a character that shows: not only spaces and invisible format marks
    (U+200F, U+200B), which `str.strip` keeps, so a phone of one right-to-left mark was taken."""
    return any(not c.isspace() and unicodedata.category(c) != "Cf" for c in value)


def shown(value: Any) -> str:
    """A name fit for a reason or log line: short identifiers as they are, anything else masked."""
    if isinstance(value, str) and IDENTIFIER.match(value) and len(value) <= 40:
        return repr(value)
    length = len(value) if isinstance(value, str) else len(json.dumps(value, default=str))
    return f"({length} characters, not shown)"


@dataclass(frozen=True)
class Correction:
    """A parsed correction: the new values by column, and the orders it names (None: all)."""

    fields: dict[str, str]
    order_ids: tuple[int, ...] | None


def _known_columns(policy: Policy) -> set[str]:
    o = policy.raw.orders
    return set(o.columns.values()) | set(o.personal_columns) | set(o.kept_columns)


def correctable_columns(policy: Policy) -> list[str]:
    """Columns a correction may change: the policy's list, as far as this shop holds them."""
    personal = policy.raw.orders.personal_columns
    return [col for col in policy.requests.correctable_columns if col in personal]


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON `text`, counted without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def load_payload(text: str | None) -> Any:
    """A stored payload (jsonb as text) read within bounds; one too big or too deep is rejected.

    The database hands the payload over as text, so a 3,000-level document reaches neither the
    driver's nor Python's recursive JSON parser: its size and depth are measured first.
    """
    if text is None:
        return None
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise RequestInputError(
            "payload_too_large",
            f"payload is larger than {MAX_PAYLOAD_BYTES // 1024} KB; send only fields and order_ids",
        )
    if _depth(text) > MAX_PAYLOAD_DEPTH:
        raise RequestInputError(
            "payload_too_deep",
            f"payload nests more than {MAX_PAYLOAD_DEPTH} levels; "
            'write {"fields": {...}, "order_ids": [...]}',
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise RequestInputError("malformed_payload", "payload is not readable JSON") from None


def parse_payload(kind: str, payload: Any, policy: Policy) -> Correction | None:
    """Validates a request's kind and payload; raises RequestInputError naming the field and fix."""
    if kind not in KINDS:
        raise RequestInputError(
            "unknown_kind", f"kind {shown(kind)} is not one of {', '.join(KINDS)}"
        )
    if kind in ("access", "erase"):
        if payload not in (None, {}):
            keys = sorted(payload) if isinstance(payload, dict) else [payload]
            raise RequestInputError(
                "unknown_payload_fields",
                f"an {kind} request takes no payload; got {', '.join(shown(k) for k in keys)}",
            )
        return None
    example = 'write {"fields": {"receiver_phone": "..."}, "order_ids": [101]} (order_ids optional)'
    if not isinstance(payload, dict):
        raise RequestInputError(
            "malformed_payload", f"a correct request needs a JSON object payload; {example}"
        )
    extra = sorted(set(payload) - {"fields", "order_ids"})
    if extra:
        raise RequestInputError(
            "unknown_payload_fields",
            f"payload field(s) {', '.join(shown(k) for k in extra)} are not known; {example}",
        )
    fields = payload.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise RequestInputError(
            "malformed_payload", f"payload.fields must name at least one field; {example}"
        )
    known = _known_columns(policy)
    unknown = sorted((name for name in fields if name not in known), key=str)
    if unknown:
        raise RequestInputError(
            "unknown_payload_fields",
            f"payload.fields {', '.join(shown(k) for k in unknown)} are not columns of "
            f"{policy.raw.orders.table}; correctable: {', '.join(correctable_columns(policy))}",
        )
    for name, value in fields.items():
        if not isinstance(value, str) or not visible(value) or len(value) > MAX_VALUE_LENGTH:
            raise RequestInputError(
                "malformed_payload",
                f"payload.fields.{name} must be non-empty text of at most {MAX_VALUE_LENGTH} characters",
            )
        if any(unicodedata.category(c) == "Cc" and c != "\n" for c in value):
            raise RequestInputError(
                "malformed_payload",
                f"payload.fields.{name} holds a control character (a tab, a NUL-like byte); "
                "send the text without it (a line break is allowed)",
            )
    order_ids = payload.get("order_ids")
    if order_ids is not None:
        if (
            not isinstance(order_ids, list)
            or not order_ids
            or len(order_ids) > MAX_ORDER_IDS
            or not all(type(i) is int and 0 < i <= MAX_BIGINT for i in order_ids)
        ):
            raise RequestInputError(
                "malformed_payload",
                f"payload.order_ids must be a list of 1 to {MAX_ORDER_IDS} positive order ids; {example}",
            )
        order_ids = tuple(sorted(set(order_ids)))
    return Correction(fields=dict(fields), order_ids=order_ids)


def redacted(payload: Any) -> Any:
    """The payload without its values: field names (when they are plain names) and order ids."""
    if payload in (None, {}):
        return payload
    if not isinstance(payload, dict):
        return {"values_removed": True}
    out: dict[str, Any] = {"values_removed": True}
    fields = payload.get("fields")
    if isinstance(fields, dict):
        out["fields"] = sorted(k for k in fields if isinstance(k, str) and IDENTIFIER.match(k))
    ids = payload.get("order_ids")
    if isinstance(ids, list) and all(type(i) is int for i in ids):
        out["order_ids"] = ids[:MAX_ORDER_IDS]
    return out
