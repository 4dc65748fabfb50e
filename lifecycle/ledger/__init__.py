"""The audit trail's hash chain: each insert into a ledger table is linked, by SHA-256, to its rows
and to the link before it (migration 0051); verification recomputes both and checks the anchors
recorded outside the database."""
