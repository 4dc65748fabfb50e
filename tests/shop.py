"""A few readable lines to build a small shop in a test."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import datetime, timedelta

import sqlalchemy as sa

PERSONAL = dict(
    receiver_name="Wang Fang",
    receiver_phone="+86 138 0013 8000",
    receiver_email="wang.fang@example.com",
    receiver_address="12 Garden Road, Apt 3",
    receiver_postcode="200031",
    payment_ref="PAY-7781-2231",
)


def leaked(text: str, values=None) -> list[str]:
    """The planted values that occur in `text` as whole tokens.

    Event logs and ledgers are full of floats, UUIDs and microsecond timestamps, in which a
    six-digit postcode turns up by chance; a leak is the value standing on its own.
    """
    values = PERSONAL.values() if values is None else values
    return [v for v in values if re.search(rf"(?<![0-9A-Za-z]){re.escape(v)}(?![0-9A-Za-z])", text)]


def add_order(
    conn, order_id: int, status: str, placed_at: datetime, customer_id: int = 1, **fields
) -> None:
    """Inserts one order holding personal data; timestamps and overrides come as keywords."""
    row = dict(
        order_id=order_id,
        customer_id=customer_id,
        status=status,
        placed_at=placed_at,
        ship_region="SH",
        **PERSONAL,
    )
    row.update(fields)
    cols = ", ".join(row)
    conn.execute(
        sa.text(f"INSERT INTO shop.orders ({cols}) VALUES ({', '.join(':' + c for c in row)})"), row
    )
    conn.execute(
        sa.text("INSERT INTO shop.order_items VALUES (:o, 1, 'SKU-1', 2, 9.90)"), {"o": order_id}
    )


def add_delivered(conn, order_id: int, delivered_at: datetime, **fields) -> None:
    """A delivered order placed a few days before delivery."""
    add_order(
        conn,
        order_id,
        "delivered",
        delivered_at - timedelta(days=3),
        paid_at=delivered_at - timedelta(days=3),
        shipped_at=delivered_at - timedelta(days=2),
        delivered_at=delivered_at,
        **fields,
    )


def add_case(
    conn,
    case_id: int,
    order_id: int,
    opened_at: datetime,
    closed_at: datetime | None = None,
    kind: str = "return",
    note: str = "customer says parcel was damaged",
) -> None:
    conn.execute(
        sa.text("INSERT INTO shop.after_sales_cases VALUES (:c, :o, :k, :opened, :closed, :note)"),
        dict(c=case_id, o=order_id, k=kind, opened=opened_at, closed=closed_at, note=note),
    )


def personal_of(conn, order_id: int) -> dict:
    """The order's personal fields and purged_at, as held now."""
    return dict(
        conn.execute(
            sa.text(
                "SELECT receiver_name, receiver_phone, receiver_email, receiver_address, receiver_postcode,"
                " payment_ref, purged_at FROM shop.orders WHERE order_id = :o"
            ),
            {"o": order_id},
        )
        .mappings()
        .one()
    )


def is_purged(conn, order_id: int) -> bool:
    row = personal_of(conn, order_id)
    return row["purged_at"] is not None and all(
        v is None for k, v in row.items() if k != "purged_at"
    )


@contextmanager
def purge_swallowed(engine, order_id: int):
    """While inside, every update of `order_id` is silently dropped: the purge misses it unawares."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"""
            CREATE FUNCTION shop.swallow() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.order_id = {int(order_id)} THEN RETURN NULL; END IF; RETURN NEW; END $$;
            CREATE TRIGGER swallow BEFORE UPDATE ON shop.orders FOR EACH ROW EXECUTE FUNCTION shop.swallow();
        """)
        )
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.text("DROP TRIGGER swallow ON shop.orders; DROP FUNCTION shop.swallow()")
            )
