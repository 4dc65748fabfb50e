"""The order vocabulary every capability shares: statuses, and what each status means for it.

An order moves placed → paid → shipped → delivered, or ends cancelled. Three different questions
are asked of that status, and each has its own name here so no module answers one with another's
list:

- is it being delivered? (`IN_DELIVERY`: paid or shipped) — the purge never clears it, a carrier
  receives it, a customer's erasure waits for it;
- may its receiving fields still be corrected? (`CORRECTABLE`: placed or paid) — once shipped,
  the carrier holds the address, so a correction would not reach the parcel;
- is it a sale? (`SALES`: paid, shipped or delivered) — what the sales volume counts.
"""

from __future__ import annotations

STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled")
IN_DELIVERY = ("paid", "shipped")
CORRECTABLE = ("placed", "paid")
SALES = ("paid", "shipped", "delivered")

MAX_BIGINT = 9_223_372_036_854_775_807
# How many order ids a report, a log line or run metadata lists; the counts are always complete.
SAMPLE_IDS = 20


def sql_list(statuses: tuple[str, ...]) -> str:
    """The statuses as an SQL list of literals, e.g. `'paid', 'shipped'` (fixed words, no input)."""
    return ", ".join(f"'{status}'" for status in statuses)
