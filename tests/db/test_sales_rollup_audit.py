"""The remainder audit (lifecycle/sales/rollup.py) against a plain Python reference, on random
partitions: the audit that checks every pair of a partition at once finds exactly the
remainders a pair-by-pair subtraction finds, and the scoped audit after some lines moved finds
every remainder that the move could have created or changed (the rest are the last round's)."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
import sqlalchemy as sa

from lifecycle.sales import rollup

PARTS = ["a", "b", "c"]
K = 5


Lines = dict[int, tuple[int | None, int]]  # line -> (customer, units)


def counted(lines: Lines, members: list[int]) -> set[int]:
    """The customers of `members` who count toward k: a guest (no customer) never, nor a
    customer with both a sale and a return (a negative line) among them."""
    signs: dict[int, set[bool]] = defaultdict(set)
    for m in members:
        customer, units = lines[m]
        if customer is not None:
            signs[customer].add(units > 0)
    return {c for c, s in signs.items() if len(s) == 1}


def reference(lines: Lines, keys: dict[str, dict[int, str | None]]) -> set[tuple]:
    """Every (outer, outer row, inner, customers, smallest inner row) with lines of 0..K-1
    customers left when the rows of `inner` lying wholly inside an `outer` row are subtracted
    from it (`counted`)."""
    found = set()
    for outer in PARTS:
        for inner in PARTS:
            if outer == inner:
                continue
            rows_in: dict[str, list[int]] = defaultdict(list)
            for line, key in keys[inner].items():
                if key is not None:
                    rows_in[key].append(line)
            inside = {
                bk
                for bk, members in rows_in.items()
                if len({keys[outer][m] for m in members}) == 1
                and keys[outer][members[0]] is not None
            }
            rows_out: dict[str, list[int]] = defaultdict(list)
            for line, key in keys[outer].items():
                if key is not None:
                    rows_out[key].append(line)
            for ak, members in rows_out.items():
                covered = [m for m in members if keys[inner][m] in inside]
                left = [m for m in members if keys[inner][m] not in inside]
                customers = counted(lines, left)
                if covered and left and len(customers) < K:
                    held = defaultdict(list)
                    for m in covered:
                        held[keys[inner][m]].append(m)
                    sizes = {bk: counted(lines, members) for bk, members in held.items()}
                    partner = min(sizes, key=lambda bk: (len(sizes[bk]), bk))
                    found.add((outer, ak, inner, len(customers), partner))
    return found


def load(conn, lines: Lines, keys: dict[str, dict[int, str | None]]) -> None:
    conn.execute(
        sa.text("""CREATE TEMP TABLE sales_lines (line_id bigint, customer_id bigint, units int)
                   ON COMMIT DROP""")
    )
    conn.execute(
        sa.text("INSERT INTO pg_temp.sales_lines VALUES (:l, :c, :u)"),
        [{"l": line, "c": customer, "u": units} for line, (customer, units) in lines.items()],
    )
    for statement in rollup._ASSIGN_TABLE.text.split(";"):
        conn.execute(sa.text(statement))
    rows = [
        {"p": part, "l": line, "k": key}
        for part in PARTS
        for line, key in keys[part].items()
        if key is not None
    ]
    conn.execute(sa.text("INSERT INTO pg_temp.sales_assign VALUES (:p, :l, :k, 0)"), rows)


def random_shop(
    rng: random.Random, guests: bool = False, returns: bool = False
) -> tuple[Lines, dict[str, dict[int, str | None]]]:
    """60 lines of about 20 customers, neighbours sharing them; each partition groups them into a
    few rows (nested-ish, so that rows often lie inside others) and withholds some. With
    `guests`, a fifth of the lines name no customer; with `returns`, a fifth are returns booked
    as negative lines (each drawn apart, so the rows stay the same)."""
    customers = {n: n // 3 + rng.randrange(2) for n in range(1, 61)}
    keys: dict[str, dict[int, str | None]] = {}
    for part, rows in zip(PARTS, (4, 9, 20), strict=True):
        keys[part] = {
            n: None if rng.random() < 0.1 else f"{part}{(n * rows // 61 + rng.randrange(2)) % rows}"
            for n in customers
        }
    apart = random.Random(rng.random())
    lines: Lines = {
        n: (
            None if guests and apart.random() < 0.2 else c,
            -1 if returns and apart.random() < 0.2 else 1,
        )
        for n, c in customers.items()
    }
    return lines, keys


def found_by_audit(conn, **kwargs) -> set[tuple]:
    return {
        (r.outer, r.outer_key, r.inner, r.customers, r.smallest_inner_key)
        for r in rollup.audit(conn, PARTS, K, **kwargs)
    }


@pytest.mark.parametrize(("guests", "returns"), [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("seed", range(6))
def test_the_audit_finds_exactly_the_remainders_of_a_pair_by_pair_subtraction(
    engine, seed, guests, returns
):
    """With guests, the audit counted a guest's NULL as one more customer: a remainder of four
    buyers and a guest passed at k = 5. With returns, a customer whose sale and return in the
    remainder net to nothing was counted as one of its customers."""
    lines, keys = random_shop(random.Random(seed), guests, returns)
    expected = reference(lines, keys)
    with engine.connect() as conn, conn.begin():
        load(conn, lines, keys)
        assert found_by_audit(conn) == expected
        assert found_by_audit(conn, involving={"b"}) == {f for f in expected if "b" in (f[0], f[2])}
    assert expected, "the random shops must open some remainders, or this test proves nothing"


@pytest.mark.parametrize("seed", range(6))
def test_after_lines_move_the_scoped_audit_misses_nothing_the_move_could_change(engine, seed):
    """Moves a few lines of partition `b` to other rows (or withholds them), records the moves as
    `reassign` does, and audits only the rows they can affect: every remainder of the full audit
    afterwards is either found by the scoped audit or was already there, unchanged, before."""
    rng = random.Random(100 + seed)
    lines, keys = random_shop(rng)
    before = reference(lines, keys)
    moved = rng.sample(sorted(lines), 5)
    after_keys = {part: dict(keys[part]) for part in PARTS}
    for n in moved:
        after_keys["b"][n] = rng.choice([None, "b0", "b3", "b8", "bX"])
    after = reference(lines, after_keys)
    with engine.connect() as conn, conn.begin():
        load(conn, lines, after_keys)
        conn.execute(sa.text(rollup.MOVED_TABLE))
        conn.execute(
            sa.text("INSERT INTO pg_temp.sales_moved VALUES ('b', :l, :k)"),
            [
                {"l": n, "k": key}
                for n in moved
                for key in (keys["b"][n], after_keys["b"][n])
                if key is not None and keys["b"][n] != after_keys["b"][n]
            ],
        )
        rollup.scope_audit(conn)
        scoped = found_by_audit(conn, involving={"b"}, scoped=True)
    involving_b = {f for f in after if "b" in (f[0], f[2])}
    assert scoped <= involving_b
    assert involving_b - scoped <= before
    assert involving_b != before, "the move must change some finding, or this test proves nothing"


def test_a_remainder_merges_the_smallest_partners_its_customers_need_to_reach_k():
    """One buyer left over, partners of 1, 1 and 2 buyers: with k = 3 the two smallest close it
    (1 + 1 + 1), with k = 5 all three are needed, with k = 2 the smallest alone."""
    r = rollup.Remainder("o", "o1", "i", "i1", 1, (("i1", 1), ("i2", 1), ("i3", 2)))
    assert r.partners_to_merge(3) == ["i1", "i2"]
    assert r.partners_to_merge(5) == ["i1", "i2", "i3"]
    assert r.partners_to_merge(2) == ["i1"]


def test_a_partner_named_last_is_taken_after_every_other():
    """The weekly build names the newest week's all row last (planning._is_newest_all_row): the
    traced remainder of the 20,000-order shop took it as its smallest partner (5 buyers) and
    withheld a tenth of the week, where the next one (8 buyers) moves its lines up, still shown.
    It is still taken when the others do not reach k."""
    r = rollup.Remainder("o", "o1", "i", "all", 3, (("all", 5), ("line", 8), ("sku", 13)))
    newest = "all".__eq__
    assert r.partners_to_merge(5) == ["all"]
    assert r.partners_to_merge(5, newest) == ["line"]
    assert r.partners_to_merge(30, newest) == ["line", "sku", "all"]
