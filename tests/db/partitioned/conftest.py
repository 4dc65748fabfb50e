"""The tests in this folder run on a session database whose shop.orders and
shop.after_sales_cases are range-partitioned by order_id, on both backends, in the normal suite:
`make test` covers both schemas without running everything twice (the whole purge, request and
erasure suite runs partitioned with LIFECYCLE_TEST_PARTITIONED=1)."""

from __future__ import annotations

import pytest

from tests.conftest import migrated_database


@pytest.fixture(scope="session", params=["embedded", "server"])
def database_url(request):
    """Like tests/conftest.py's, with the shop tables partitioned."""
    yield from migrated_database(request.param, partitioned=True, suffix="_partitioned")
