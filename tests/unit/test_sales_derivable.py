"""The exact differencing audit (lifecycle/sales/derivable.py) against linear algebra done plainly:
an atom is derivable exactly when adding its unit vector to the published rows' vectors does not
raise their rank, and its certificate alone derives it."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest

from lifecycle.sales import derivable
from lifecycle.sales.derivable import Atom, find_derivable

K = 3


def atoms_of(customers: dict[int, int], keys: list[dict[int, str | None]]) -> list[Atom]:
    """The atoms of lines (line -> customer) placed in the partitions' rows (line -> key)."""
    grouped: dict[tuple, list[int]] = defaultdict(list)
    for line in customers:
        membership = tuple(part[line] for part in keys)
        if any(key is not None for key in membership):
            grouped[membership].append(line)
    return [
        Atom(membership, len({customers[m] for m in members}), len(members))
        for membership, members in grouped.items()
    ]


def rank(vectors: list[np.ndarray]) -> int:
    return int(np.linalg.matrix_rank(np.array(vectors))) if vectors else 0


def row_vectors(atoms: list[Atom], rows: set[tuple[int, str]] | None = None) -> list[np.ndarray]:
    """Each published row (all rows, or `rows`) as its vector over the atoms."""
    index = {atom.keys: n for n, atom in enumerate(atoms)}
    members: dict[tuple[int, str], np.ndarray] = {}
    for atom in atoms:
        for row in atom.rows():
            if rows is None or row in rows:
                members.setdefault(row, np.zeros(len(atoms)))[index[atom.keys]] = 1
    return list(members.values())


def in_span(base: list[np.ndarray], vector: np.ndarray) -> bool:
    return rank([*base, vector]) == rank(base)


def derivable_by_rank(atoms: list[Atom], rows: set[tuple[int, str]] | None = None) -> set[tuple]:
    """The atoms whose unit vector lies in the span of the rows' vectors (all rows, or `rows`)."""
    base = row_vectors(atoms, rows)
    found = set()
    for n, atom in enumerate(atoms):
        unit = np.zeros(len(atoms))
        unit[n] = 1
        if in_span(base, unit):
            found.add(atom.keys)
    return found


def pairs_by_rank(atoms: list[Atom], rows: set[tuple[int, str]] | None = None) -> set[frozenset]:
    """The pairs of atoms, neither derivable alone, whose union lies in the rows' span."""
    base = row_vectors(atoms, rows)
    alone = derivable_by_rank(atoms, rows)
    found = set()
    for a in range(len(atoms)):
        for b in range(a + 1, len(atoms)):
            if atoms[a].keys in alone or atoms[b].keys in alone:
                continue
            union = np.zeros(len(atoms))
            union[[a, b]] = 1
            if in_span(base, union):
                found.add(frozenset((atoms[a].keys, atoms[b].keys)))
    return found


def test_a_chain_through_three_tables_is_found_with_the_rows_that_make_it():
    """A sku's 28-day total minus its 7-day total minus its two middle weeks leaves its first
    week, which the weekly table merged into the product line with another sku's buyer: no table
    minus the rows of one other table inside it leaves that week alone."""
    customers, weekly, last7, last28 = {}, {}, {}, {}
    weeks = {1: [1, 2], 2: [3, 4, 5], 3: [6, 7, 8], 4: [9, 10, 11]}
    line = 0
    for week, buyers in weeks.items():
        for buyer in buyers:
            line += 1
            customers[line] = buyer
            weekly[line] = f"w{week}|line" if week in (1, 4) else f"w{week}|X"
            last7[line] = "X" if week == 4 else None
            last28[line] = "X"
    for buyer, week in ((20, 1), (21, 4), (22, 4), (23, 4)):  # Z in week 1, Y in week 4
        line += 1
        customers[line] = buyer
        weekly[line] = f"w{week}|line"
        last7[line] = "Y" if week == 4 else None
        last28[line] = "Y" if week == 4 else None
    atoms = atoms_of(customers, [weekly, last7, last28])
    found = {leak.atom.keys: leak for leak in find_derivable(atoms, K)}
    first_week = ("w1|line", None, "X")
    assert set(found) == {first_week, ("w1|line", None, None)}  # X's 2 buyers, Z's 1
    assert found[first_week].atom.customers == 2
    rows = {row for row, _ in found[first_week].certificate}
    assert {(0, "w2|X"), (0, "w3|X"), (1, "X"), (2, "X")} <= rows
    assert first_week in derivable_by_rank(atoms, rows)


def random_tables(
    seed: int, most_lines: int = 26, most_rows: int = 6, withheld: float = 0.2
) -> list[Atom]:
    """The atoms of a few random partitions of up to `most_lines` lines of nine customers."""
    rng = random.Random(seed)
    lines = rng.randint(6, most_lines)
    customers = {n: rng.randint(1, 9) for n in range(lines)}
    keys = []
    for _ in range(rng.randint(2, 4)):
        labels = [f"r{n}" for n in range(rng.randint(1, most_rows))]
        keys.append(
            {n: rng.choice(labels) if rng.random() > withheld else None for n in range(lines)}
        )
    return atoms_of(customers, keys)


@pytest.mark.parametrize("seed", range(40))
def test_the_derivable_atoms_are_those_linear_algebra_finds_on_random_tables(seed):
    atoms = random_tables(seed)
    small = {atom.keys for atom in atoms if atom.customers < K}
    leaks = [leak for leak in find_derivable(atoms, K) if not leak.others]
    assert {leak.atom.keys for leak in leaks} == derivable_by_rank(atoms) & small
    for leak in leaks:  # each certificate derives its atom on its own
        assert leak.atom.keys in derivable_by_rank(atoms, {row for row, _ in leak.certificate})


def test_two_atoms_derivable_together_though_neither_alone_are_found():
    """A product line's 28-day sku rows minus its first three weeks in the weekly table leaves
    the last week of two skus that the weekly table withheld (an adversary's shop: two skus'
    last week of three and one buyers, four at k = 5). Neither sku's week alone is derivable: its
    28-day row minus its earlier weeks would need those weeks' own rows, and they are in the
    line's rows with the other sku's. Every published row covers at least k customers."""
    buyers = {  # (sku, week) -> buyers; week 4 is in no weekly row
        ("Y3", 1): (1, 2, 3), ("Y3", 2): (6, 7), ("Y3", 3): (8,), ("Y3", 4): (1, 2),
        ("Y5", 1): (4, 5), ("Y5", 2): (9, 10, 11), ("Y5", 3): (12, 13, 14, 15), ("Y5", 4): (4,),
    }  # fmt: skip
    customers, weekly, last28 = {}, {}, {}
    for line, ((sku, week), who) in enumerate(
        ((cell, buyer) for cell, group in buyers.items() for buyer in group), start=1
    ):
        customers[line] = who
        weekly[line] = None if week == 4 else f"w{week}|toy"
        last28[line] = sku
    atoms = atoms_of(customers, [weekly, last28])
    assert not derivable_by_rank(atoms)
    pairs = [leak for leak in find_derivable(atoms, 5) if len(leak.others) == 1]
    assert [frozenset((p.atom.keys, p.others[0].keys)) for p in pairs] == [
        frozenset(((None, "Y3"), (None, "Y5")))
    ]
    assert pairs[0].customers == 3
    assert pairs_by_rank(atoms, {row for row, _ in pairs[0].certificate}) == pairs_by_rank(atoms)


def small_pairs(atoms: list[Atom], k: int) -> set[frozenset]:
    by_keys = {atom.keys: atom for atom in atoms}
    return {p for p in pairs_by_rank(atoms) if sum(by_keys[keys].customers for keys in p) < k}


@pytest.mark.parametrize("seed", range(40))
def test_the_derivable_pairs_are_those_linear_algebra_finds_on_random_tables(seed):
    """Every pair of atoms whose union is derivable while neither atom is, and whose customers
    (counted apart) are under k, is found, with a certificate that derives the union alone."""
    atoms = random_tables(1000 + seed, 22, 5, 0.3)
    pairs = [leak for leak in find_derivable(atoms, 6) if len(leak.others) == 1]
    assert {frozenset((p.atom.keys, p.others[0].keys)) for p in pairs} == small_pairs(atoms, 6)
    for p in pairs:  # each certificate derives the pair on its own
        union = frozenset((p.atom.keys, p.others[0].keys))
        assert union in pairs_by_rank(atoms, {row for row, _ in p.certificate})


def test_the_random_tables_hold_derivable_pairs():
    """Or the test above proves nothing."""
    pairs = [small_pairs(random_tables(1000 + seed, 22, 5, 0.3), 6) for seed in range(40)]
    assert sum(map(len, pairs)) >= 10


def triples_by_rank(atoms: list[Atom]) -> set[frozenset]:
    """The unions of three atoms in the rows' span of which no atom and no pair is."""
    base = row_vectors(atoms)
    alone = derivable_by_rank(atoms)
    pairs = pairs_by_rank(atoms)
    keys = [atom.keys for atom in atoms]
    found = set()
    for a in range(len(atoms)):
        for b in range(a + 1, len(atoms)):
            for c in range(b + 1, len(atoms)):
                union = frozenset((keys[a], keys[b], keys[c]))
                if union & alone or any(pair <= union for pair in pairs):
                    continue
                vector = np.zeros(len(atoms))
                vector[[a, b, c]] = 1
                if in_span(base, vector):
                    found.add(union)
    return found


@pytest.mark.parametrize("seed", range(30))
def test_the_derivable_triples_are_those_linear_algebra_finds_on_random_tables(seed, monkeypatch):
    """Every union of three atoms derivable while no smaller part of it is, and whose customers
    (counted apart) are under k, is found, with a certificate that derives it alone (the search's
    bounds set past these tables' sizes)."""
    monkeypatch.setattr(derivable, "TRIPLE_REST", 10_000)
    atoms = random_tables(2000 + seed, 16, 5, 0.3)
    by_keys = {atom.keys: atom for atom in atoms}
    k = 8
    expected = {t for t in triples_by_rank(atoms) if sum(by_keys[keys].customers for keys in t) < k}
    triples = [leak for leak in find_derivable(atoms, k) if len(leak.others) == 2]
    assert {frozenset(atom.keys for atom in leak.atoms) for leak in triples} == expected
    for leak in triples:
        rows = {row for row, _ in leak.certificate}
        union = np.zeros(len(atoms))
        union[[n for n, atom in enumerate(atoms) if atom in leak.atoms]] = 1
        assert in_span(row_vectors(atoms, rows), union)


def test_the_random_tables_hold_derivable_triples():
    """Or the test above proves nothing."""
    tables = [random_tables(2000 + seed, 16, 5, 0.3) for seed in range(30)]
    assert sum(len(triples_by_rank(atoms)) for atoms in tables) >= 10
