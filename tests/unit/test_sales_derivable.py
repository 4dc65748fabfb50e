"""The exact differencing audit (lifecycle/sales/derivable.py) against linear algebra done plainly:
an atom is derivable exactly when adding its unit vector to the published rows' vectors does not
raise their rank, and its certificate alone derives it."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest

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


def derivable_by_rank(atoms: list[Atom], rows: set[tuple[int, str]] | None = None) -> set[tuple]:
    """The atoms whose unit vector lies in the span of the rows' vectors (all rows, or `rows`)."""
    index = {atom.keys: n for n, atom in enumerate(atoms)}
    members: dict[tuple[int, str], np.ndarray] = {}
    for atom in atoms:
        for row in atom.rows():
            if rows is None or row in rows:
                members.setdefault(row, np.zeros(len(atoms)))[index[atom.keys]] = 1
    base = list(members.values())
    found = set()
    for atom in atoms:
        unit = np.zeros(len(atoms))
        unit[index[atom.keys]] = 1
        if rank([*base, unit]) == rank(base):
            found.add(atom.keys)
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


@pytest.mark.parametrize("seed", range(40))
def test_the_derivable_atoms_are_those_linear_algebra_finds_on_random_tables(seed):
    rng = random.Random(seed)
    lines = rng.randint(6, 26)
    customers = {n: rng.randint(1, 9) for n in range(lines)}
    keys = []
    for _ in range(rng.randint(2, 4)):
        labels = [f"r{n}" for n in range(rng.randint(1, 6))]
        keys.append({n: rng.choice(labels) if rng.random() > 0.2 else None for n in range(lines)})
    atoms = atoms_of(customers, keys)
    small = {atom.keys for atom in atoms if atom.customers < K}
    leaks = find_derivable(atoms, K)
    assert {leak.atom.keys for leak in leaks} == derivable_by_rank(atoms) & small
    for leak in leaks:  # each certificate derives its atom on its own
        assert leak.atom.keys in derivable_by_rank(atoms, {row for row, _ in leak.certificate})
