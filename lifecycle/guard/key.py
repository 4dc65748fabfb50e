"""The guard's HMAC key: where it comes from, how Python and SQL hash with it, and the masked form
(length and keyed-hash prefix) shown instead of a value.

The key lives outside the database (LIFECYCLE_GUARD_SECRET or a 0600 key file), so the digests in
a temp table or a server log cannot be brute-forced back into phone numbers. HMAC is built from
sha256() (PostgreSQL 11+) because pgcrypto is not available on every server (the embedded one
lacks it); `tests/db/test_guard_fingerprints.py` proves it equals Python's hmac.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from lifecycle.files import write_private

MIN_SECRET_CHARS = 16
SAMPLES = 3  # masked samples a finding shows at most


class GuardKeyError(RuntimeError):
    """The HMAC key cannot be used; the message says what to set or fix."""


@dataclass(frozen=True)
class GuardKey:
    """The HMAC key, with the padded forms SQL needs; its repr never shows the key."""

    key: bytes = field(repr=False)

    def digest(self, token: str) -> bytes:
        """HMAC-SHA256 of `token`, as `hmac_sql` computes it in the database."""
        return hmac.new(self.key, token.encode("utf-8"), hashlib.sha256).digest()

    def params(self) -> dict[str, bytes]:
        """Inner and outer pads (RFC 2104) bound into the SQL HMAC."""
        block = hashlib.sha256(self.key).digest() if len(self.key) > 64 else self.key
        block = block.ljust(64, b"\0")
        return {
            "hmac_ipad": bytes(b ^ 0x36 for b in block),
            "hmac_opad": bytes(b ^ 0x5C for b in block),
        }


def load_key(secret: str | None, path: Path) -> GuardKey:
    """`secret` (LIFECYCLE_GUARD_SECRET) when set, else the key file at `path`, made 0600 on
    first use."""
    if secret:
        if len(secret) < MIN_SECRET_CHARS:
            raise GuardKeyError(
                f"LIFECYCLE_GUARD_SECRET is shorter than {MIN_SECRET_CHARS} characters; set a long "
                "random value, e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        return GuardKey(secret.encode("utf-8"))
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_private(path, secrets.token_hex(32).encode() + b"\n", exclusive=True)
        except FileExistsError:
            pass  # another process made it first: its key is the key, read below
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise GuardKeyError(
            f"{path}: the guard key is readable by others (mode {mode:o}); run `chmod 600 {path}`"
        )
    try:
        return GuardKey(bytes.fromhex(path.read_text(encoding="ascii").strip()))
    except ValueError:
        raise GuardKeyError(f"{path}: not a hex key; delete it to have a new one made") from None


def hmac_sql(expr: str) -> str:
    """HMAC-SHA256 of the text `expr` under the bound pads (:hmac_ipad, :hmac_opad)."""
    return f"sha256(:hmac_opad || sha256(:hmac_ipad || convert_to({expr}, 'UTF8')))"


def mask(length: int, digest: bytes) -> str:
    """How a matched value is shown: its length and a keyed-hash prefix, nothing of the value."""
    return f"{length} chars #{digest.hex()[:6]}"


def mask_sql(length: str, digest: str) -> str:
    """`mask` in SQL, of the integer expression `length` and the bytea expression `digest`."""
    return f"({length}) || ' chars #' || left(encode({digest}, 'hex'), 6)"
