"""Tables outside the policy's mapping whose names are fixed by the migrations.

The shop's raw tables are named in the policy; these are not: the website's requests table and
the carrier hand-off. They live here, not in their capability's package, because the erasure
rewrites them too and must not depend on the capabilities that fill them.
"""

from __future__ import annotations

REQUESTS_TABLE = "shop.data_requests"
HANDOFF_TABLE = "logistics.handoff"
