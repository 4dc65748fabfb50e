"""Sales cells that some combination of published rows gives away: the exact differencing audit.

Every published sales table partitions the sales lines of its span (lifecycle.sales.rollup). A
reader holds every published row's figures and may add and subtract any of them, across all the
tables, as often as they like; what they can compute is exactly the linear span of the rows'
indicator vectors over the lines. Lines that sit in the same row of every table form an *atom*:
no combination tells them apart. An atom's figures can be derived iff its own indicator vector
lies in that span; then its units, revenue and orders are known to anyone, and if fewer than k
customers stand behind them, the tables single those customers out.

The pair audit (rollup.audit) finds a row minus the rows of one other table inside it. A chain
through three tables is a combination it does not see: a sku's 84-day total, minus its 28-day
total, minus the weeks the weekly table shows for that sku, leaves the one week the weekly build
merged up, and that week's days withheld by the daily table are then its remainder. On the
bench's long-tail shop the tables built with the pair audit alone let 50 atoms of 1-4 buyers be
derived that way (docs/sales.md). This audit finds every derivable atom, whatever the chain.

How: one statement groups the span's lines by their row in each partition and counts each atom's
distinct customers (not one with a sale and a return in it: source.counted_customers); only row
numbers and counts leave the database, never a customer or an order. Rows and atoms fall into
connected components (an atom joins the rows it is in), and only a component holding an atom under
k customers is reduced, to reduced row echelon form modulo the prime 2^61 - 1, tracking which
published rows make each basis vector. An atom is derivable iff it is a pivot whose basis vector is
its own unit vector; the rows that combine to it (its *certificate*) are what a planning build
merges to break it. Elimination is not set-based SQL; it runs on one component's atoms at a time
(hundreds to a few thousand on the bench shops).

Components never cross a *group* of product lines: product lines joined by a published row that
holds lines of both (a week's all row, a window's OTHER line), found in SQL. The atoms stream
from the database one group after another, so memory holds the largest group's atoms, not the
span's; and an audit can be limited to the groups of some product lines (a planning build's next
audit reads only those its merges touched since the last one: the others are as they were,
clean).

Modulo a prime the span can only be larger than over the rationals, except when the prime
divides a denominator of the combination (a minor of a 0/1 matrix, vanishingly unlikely at
2^61 - 1): an atom derivable over the rationals is found, and a spurious find merges a cell more
than needed, which is the safe side.

What is exact: every single atom, and every pair of atoms whose union is derivable while neither
atom alone is (`_derivable_unions`), counting the pair's customers apart; unions of three atoms
among the sparser basis vectors (TRIPLE_REST, TRIPLE_PAIRS). A larger union is searched where it
is a remainder of the pair audit (a row, a sum of weekly rows or a window minus a shorter one,
minus the rows of another table inside it: lifecycle.sales.planning); one reachable only through
a longer chain is not searched (a search over every union is an integer program).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.sales.source import counted_customers

PRIME = (1 << 61) - 1

Row = tuple[int, str | int]  # (index of the partition in the audited list, row key or number)

# Every row of the audited partitions numbered, so that atoms travel as integers, not keys.
_ROW_IDS = """
CREATE TEMP TABLE sales_row_ids ON COMMIT DROP AS
SELECT part, row_key, CAST(dense_rank() OVER (ORDER BY part, row_key) AS int) AS id
FROM (SELECT DISTINCT part, row_key FROM pg_temp.sales_assign
      WHERE part = ANY(CAST(:parts AS text[]))) r
"""
_ROW_KEYS = "SELECT id, row_key FROM pg_temp.sales_row_ids WHERE id = ANY(CAST(:ids AS int[]))"
# The published rows that hold lines of more than one product line, with those product lines.
# Only rows above level 1 are read: levels 0 and 1 of every audited partition name a sku (the
# daily table's rows, a week's sku_region and sku rows, a window's sku rows) or a product line (a
# window's product_line rows), and a sku has one product line (lifecycle.sales.catalogue), so
# such a row never holds two. Grouping every row of every partition took 28 of the 348 s of a
# 3M-order shop's cold build (6.8 of 90 s at 1M, 2.3 s now); the rows above level 1 hold the few
# lines rolled up that far.
_NAMED_LEVELS = 2
_CROSSING = f"""
WITH crossing AS (
    SELECT a.part, a.row_key FROM pg_temp.sales_assign a JOIN pg_temp.sales_lines l USING (line_id)
    WHERE a.part = ANY(CAST(:parts AS text[])) AND a.level >= {_NAMED_LEVELS}
    GROUP BY a.part, a.row_key HAVING min(l.product_line) <> max(l.product_line)
)
SELECT array_agg(DISTINCT l.product_line)
FROM crossing c JOIN pg_temp.sales_assign a USING (part, row_key)
JOIN pg_temp.sales_lines l USING (line_id)
GROUP BY c.part, c.row_key
"""
_PRODUCT_LINES = "SELECT DISTINCT product_line FROM pg_temp.sales_lines"
# The atoms of some groups of product lines, one group after another.
_GROUPED_ATOMS = """
WITH grp AS (
    SELECT * FROM unnest(CAST(:lines AS text[]), CAST(:groups AS int[])) g(product_line, g)
), atom AS (
    SELECT grp.g, {keys}, {customers} AS customers, count(*) AS lines
    FROM pg_temp.sales_lines l JOIN grp ON grp.product_line = l.product_line {joins}
    WHERE {published}
    GROUP BY grp.g, {grouped}
)
SELECT atom.g, {ids}, atom.customers, atom.lines FROM atom {numbered} ORDER BY atom.g
"""


@dataclass(frozen=True)
class Atom:
    """Lines that sit in the same row of every audited partition (None: in no row of it)."""

    keys: tuple[str | int | None, ...]  # row keys, or their numbers (pg_temp.sales_row_ids)
    customers: int
    lines: int

    def rows(self) -> list[Row]:
        return [(n, key) for n, key in enumerate(self.keys) if key is not None]


@dataclass(frozen=True)
class Derivable:
    """An atom of fewer than k customers whose figures a combination of published rows gives,
    with the published rows of one such combination (each with the lines it holds), and which
    of them lie *alongside* the atom (`alongside`). Where only the union of two or three atoms
    is derivable (`_derivable_unions`), the others are `others`."""

    atom: Atom
    certificate: tuple[tuple[Row, int], ...]
    alongside: frozenset[Row] = frozenset()
    others: tuple[Atom, ...] = ()

    @property
    def atoms(self) -> tuple[Atom, ...]:
        return (self.atom, *self.others)

    @property
    def customers(self) -> int:
        """The customers behind the derived figure (a union's counted apart: at least as many)."""
        return sum(atom.customers for atom in self.atoms)


def _atoms_sql(parts: list[str]) -> str:
    n = range(len(parts))
    return _GROUPED_ATOMS.format(
        keys=", ".join(f"a{i}.row_key AS k{i}" for i in n),
        customers=counted_customers("l.customer_id", "l.units"),
        grouped=", ".join(f"a{i}.row_key" for i in n),
        joins=" ".join(
            f"LEFT JOIN pg_temp.sales_assign a{i} ON a{i}.part = :p{i} AND a{i}.line_id = l.line_id"
            for i in n
        ),
        published=" OR ".join(f"a{i}.row_key IS NOT NULL" for i in n),
        ids=", ".join(f"i{i}.id" for i in n),
        numbered=" ".join(
            f"LEFT JOIN pg_temp.sales_row_ids i{i} ON i{i}.part = :p{i} AND i{i}.row_key = atom.k{i}"
            for i in n
        ),
    )


def _number_rows(conn: Connection, parts: list[str]) -> dict[str, str]:
    conn.execute(sa.text("DROP TABLE IF EXISTS pg_temp.sales_row_ids"))
    conn.execute(sa.text(_ROW_IDS), {"parts": parts})
    conn.execute(sa.text("ANALYZE pg_temp.sales_row_ids"))  # temp tables get no autovacuum
    return {f"p{i}": name for i, name in enumerate(parts)}


# The atoms are read through a cursor (streamed, one group after another), and PostgreSQL plans a
# cursor for its first tenth of rows (cursor_tuple_fraction 0.1), which favours a plan that starts
# fast over one that finishes fast. Every row is read, so the plan is made for all of them, and the
# numbered rows are analyzed (their first estimate was 136 rows per table where 1M orders have
# 23k). On the 10M-order shop's first night one such cursor of the weekly build kept the server
# busy for over 20 minutes, 20,000 atoms a fetch every 8 minutes, until the run was stopped; the
# same audit streams in seconds at 1M and 3M. Which plan that cursor had was not seen; with the
# unanalyzed row numbers its estimate was 246 billion rows for 3.9 million (docs/sales.md).
_PLAN_FOR_EVERY_ROW = sa.text("SET LOCAL cursor_tuple_fraction = 1.0")


def product_line_groups(conn: Connection, parts: list[str]) -> dict[str, int]:
    """Each product line of the span's lines with its group: product lines that a published row
    of `parts` holds together are in one group (union-find over the few rows that cross lines),
    so no atom and no component crosses a group."""
    lines = sorted(line for (line,) in conn.execute(sa.text(_PRODUCT_LINES)))
    parent = {line: line for line in lines}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for (together,) in conn.execute(sa.text(_CROSSING), {"parts": parts}):
        first = root(together[0])
        for other in together[1:]:
            parent[root(other)] = first
    roots = {r: n for n, r in enumerate(sorted({root(line) for line in lines}))}
    return {line: roots[root(line)] for line in lines}


@dataclass
class Audit:
    """What an exact audit found (its rows numbered) and how many atoms it read."""

    found: list[Derivable]
    atoms: int = 0


def audit_groups(
    conn: Connection, parts: list[str], k: int, product_lines: set[str] | None = None
) -> Audit:
    """The derivable atoms under k of the groups holding `product_lines` (None: every group),
    streamed from the database one group after another (`product_line_groups`)."""
    groups = product_line_groups(conn, parts)
    if product_lines is not None:
        wanted = {groups[line] for line in product_lines if line in groups}
        groups = {line: g for line, g in groups.items() if g in wanted}
    audit = Audit([])
    if not groups:
        return audit
    names = _number_rows(conn, parts)
    params = names | {"lines": list(groups), "groups": list(groups.values())}
    conn.execute(_PLAN_FOR_EVERY_ROW)
    result = conn.execute(
        sa.text(_atoms_sql(parts)),
        params,
        execution_options={"stream_results": True, "yield_per": 20_000},
    )
    group: list[Atom] = []
    current = None
    for r in result:
        if r[0] != current and group:
            audit.found += find_derivable(group, k)
            group = []
        current = r[0]
        group.append(Atom(tuple(r[1 : len(parts) + 1]), int(r[-2]), int(r[-1])))
        audit.atoms += 1
    audit.found += find_derivable(group, k)
    return audit


def small_derivable(
    conn: Connection, parts: list[str], k: int, product_lines: set[str] | None = None
) -> list[Derivable]:
    """Every atom of 1..k-1 customers that a linear combination of the published rows of
    `parts` (as assigned in pg_temp.sales_assign) derives, each with its certificate, its rows
    named by their keys again; with `product_lines`, only in their groups."""
    found = audit_groups(conn, parts, k, product_lines).found
    atoms = [atom for leak in found for atom in leak.atoms]
    ids = {key for atom in atoms for key in atom.keys if key is not None}
    ids |= {key for leak in found for (_, key), _ in leak.certificate}
    names = dict(conn.execute(sa.text(_ROW_KEYS), {"ids": sorted(ids)}).all()) if ids else {}

    def named(row: Row) -> Row:
        return row[0], names[row[1]]

    def keyed(atom: Atom) -> Atom:
        keys = tuple(None if key is None else names[key] for key in atom.keys)
        return Atom(keys, atom.customers, atom.lines)

    return [
        Derivable(
            keyed(leak.atom),
            tuple((named(row), lines) for row, lines in leak.certificate),
            frozenset(named(row) for row in leak.alongside),
            tuple(keyed(atom) for atom in leak.others),
        )
        for leak in found
    ]


def find_derivable(found: Iterable[Atom], k: int) -> list[Derivable]:
    """The atoms under k customers whose unit vector lies in the span of the rows' vectors."""
    result: list[Derivable] = []
    for component in _components(list(found)):
        if any(atom.customers < k for atom in component):
            result += _derivable_in(component, k)
    return result


def _components(found: list[Atom]) -> list[list[Atom]]:
    """The atoms grouped by connected component (two atoms meet when they share a row)."""
    parent = list(range(len(found)))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_in: dict[Row, int] = {}
    for n, atom in enumerate(found):
        for row in atom.rows():
            other = first_in.setdefault(row, n)
            a, b = root(n), root(other)
            if a != b:
                parent[a] = b
    groups: dict[int, list[Atom]] = defaultdict(list)
    for n, atom in enumerate(found):
        groups[root(n)].append(atom)
    return list(groups.values())


def _add(target: dict[int, int], factor: int, source: dict[int, int]) -> None:
    """target += factor * source, modulo PRIME, dropping zeros."""
    for key, value in source.items():
        new = (target.get(key, 0) + factor * value) % PRIME
        if new:
            target[key] = new
        else:
            target.pop(key, None)


def _derivable_in(component: list[Atom], k: int) -> list[Derivable]:
    """Reduced row echelon form of one component's rows over its atoms, each basis vector with
    the combination of rows that makes it; the small atoms whose unit vector is a basis vector."""
    members: dict[Row, list[int]] = defaultdict(list)
    for n, atom in enumerate(component):
        for row in atom.rows():
            members[row].append(n)
    rows = sorted(members, key=lambda row: (len(members[row]), row))
    basis: dict[int, tuple[dict[int, int], dict[int, int]]] = {}  # pivot -> (vector, combination)
    holding: dict[int, set[int]] = defaultdict(set)  # atom -> pivots whose vectors have it
    for r, row in enumerate(rows):
        vector = dict.fromkeys(members[row], 1)
        combination = {r: 1}
        for pivot in [a for a in vector if a in basis]:
            factor = vector.get(pivot)
            if factor:
                _add(vector, PRIME - factor, basis[pivot][0])
                _add(combination, PRIME - factor, basis[pivot][1])
        if not vector:
            continue  # this row is a combination of the rows before it
        pivot = min(vector)
        inverse = pow(vector[pivot], PRIME - 2, PRIME)
        vector = {a: v * inverse % PRIME for a, v in vector.items()}
        combination = {c: v * inverse % PRIME for c, v in combination.items()}
        for other in list(holding.get(pivot, ())):  # keep the form reduced: no other vector
            other_vector, other_combination = basis[other]  # keeps a coefficient at the pivot
            factor = other_vector[pivot]
            before = set(other_vector)
            _add(other_vector, PRIME - factor, vector)
            _add(other_combination, PRIME - factor, combination)
            for atom in before - set(other_vector):
                holding[atom].discard(other)
            for atom in set(other_vector) - before:
                holding[atom].add(other)
        basis[pivot] = (vector, combination)
        for atom in vector:
            holding[atom].add(pivot)
    lines: dict[Row, int] = defaultdict(int)
    for atom in component:
        for row in atom.rows():
            lines[row] += atom.lines
    found = []
    for pivot, (vector, combination) in basis.items():
        atom = component[pivot]
        if atom.customers < k and len(vector) == 1:
            certificate = [rows[r] for r in sorted(combination)]
            found.append(
                Derivable(
                    atom,
                    tuple((row, lines[row]) for row in certificate),
                    frozenset(_alongside(atom, certificate, members, component)),
                )
            )
    for union, combination in _derivable_unions(basis):
        first, *others = (component[a] for a in union)
        if sum(atom.customers for atom in (first, *others)) < k:
            certificate = [rows[r] for r in sorted(combination)]
            certificate_lines = tuple((row, lines[row]) for row in certificate)
            found.append(Derivable(first, certificate_lines, others=tuple(others)))
    return found


# The triple search reads basis vectors with at most this many atoms besides their pivot, and
# compares at most this many pairs of them: a bound on the work, not on what a pair finds.
TRIPLE_REST = 8
TRIPLE_PAIRS = 200_000


def _derivable_unions(
    basis: dict[int, tuple[dict[int, int], dict[int, int]]],
) -> list[tuple[tuple[int, ...], dict[int, int]]]:
    """The unions of two or three atoms that a combination of rows derives though no smaller
    part of them is derivable, each with that combination.

    A vector lies in the rows' span iff it is the sum of the basis vectors of its pivots, each
    times its own coefficient there (the form is reduced, so a basis vector holds no other pivot).
    So a union of atoms is derivable iff the basis vectors of the pivots among them add up to
    the union: their parts outside the pivots (their *rests*) add up to the union's non-pivot
    atoms, each once. For a pair: one rest is the other atom, or two rests cancel; one hash of
    each rest finds them all. For three: one rest is the two other atoms, two rests add up to the
    third atom, or three rests cancel; each is a lookup from one rest or one pair of rests that
    share an atom (in three rests that cancel, every atom of one is in another). The triples
    are searched among rests of at most TRIPLE_REST atoms and at most TRIPLE_PAIRS pairs of them
    per component, so the cost stays bounded where the rows are dense.

    Found by adversaries: a product line's 28-day sku rows minus its first three weeks in the
    weekly table left two skus' last week (a pair); a sku's regions in a week plus its product
    line's row (holding only that sku) minus its days left a withheld day's three atoms."""
    rests = {
        pivot: {a: v for a, v in vector.items() if a != pivot}
        for pivot, (vector, _) in basis.items()
    }
    alone = {pivot for pivot, rest in rests.items() if not rest}  # derivable alone: found so
    by_rest: dict[frozenset[tuple[int, int]], list[int]] = defaultdict(list)
    for pivot, rest in rests.items():
        if rest:
            by_rest[frozenset(rest.items())].append(pivot)

    def combined(*pivots: int) -> dict[int, int]:
        total: dict[int, int] = {}
        for pivot in pivots:
            _add(total, 1, basis[pivot][1])
        return total

    def negated(rest: dict[int, int]) -> frozenset[tuple[int, int]]:
        return frozenset((a, (PRIME - v) % PRIME) for a, v in rest.items())

    found: dict[frozenset[int], dict[int, int]] = {}
    for pivot, rest in rests.items():  # pairs
        if pivot in alone:
            continue
        if len(rest) == 1 and next(iter(rest.values())) == 1:
            found[frozenset((pivot, *rest))] = combined(pivot)
        for partner in by_rest.get(negated(rest), ()):
            found.setdefault(frozenset((pivot, partner)), combined(pivot, partner))
    pairs = set(found)

    def minimal(union: frozenset[int]) -> bool:
        return not (union & alone) and not any(pair <= union for pair in pairs)

    small = {p: r for p, r in rests.items() if r and len(r) <= TRIPLE_REST}
    for pivot, rest in small.items():  # one pivot and two atoms outside it
        if len(rest) == 2 and set(rest.values()) == {1}:
            union = frozenset((pivot, *rest))
            if minimal(union):
                found.setdefault(union, combined(pivot))
    holding: dict[int, list[int]] = defaultdict(list)
    for pivot, rest in small.items():
        for a in rest:
            holding[a].append(pivot)
    compared = 0
    for pivot, rest in small.items():  # two pivots whose rests add up to a third atom
        for a, v in rest.items():
            others = {b: (PRIME - w) % PRIME for b, w in rest.items() if b != a}
            others[a] = (1 - v) % PRIME
            for partner in by_rest.get(frozenset((b, w) for b, w in others.items() if w), ()):
                union = frozenset((pivot, partner, a))
                if partner != pivot and len(union) == 3 and minimal(union):
                    found.setdefault(union, combined(pivot, partner))
    shared = (
        (first, second)
        for pivots in holding.values()
        for i, first in enumerate(pivots)
        for second in pivots[i + 1 :]
    )
    for first, second in shared:  # three pivots whose rests cancel
        compared += 1
        if compared > TRIPLE_PAIRS:
            break
        total = dict(rests[first])
        _add(total, 1, rests[second])
        for third in by_rest.get(negated(total), ()) if total else ():
            union = frozenset((first, second, third))
            if len(union) == 3 and minimal(union):
                found.setdefault(union, combined(first, second, third))
    return [(tuple(sorted(union)), combination) for union, combination in found.items()]


def _alongside(
    atom: Atom, certificate: list[Row], members: dict[Row, list[int]], component: list[Atom]
) -> list[Row]:
    """The rows of the certificate whose lines stand where the atom stands in every other table
    of it: inside each of its rows that holds the atom, and apart from (or wholly around) each of
    its rows that does not. Merged with the atom one level up, such a row's lines can no longer be
    told from the atom's by that combination (a sku's week beside the week merged up, in the same
    window block of the summary), where merging a row the combination only subtracts whole (a
    week in another block) leaves another combination that derives the atom."""

    def keys(row: Row, table: int) -> set[str | int | None]:
        return {component[a].keys[table] for a in members[row]}

    found = []
    for row in certificate:
        if row in atom.rows():
            continue
        for other in certificate:
            table, key = other
            if table == row[0]:
                continue
            inside = keys(row, table) == {key}
            apart = key not in keys(row, table)
            around = keys(other, row[0]) == {row[1]}
            if not (inside if atom.keys[table] == key else apart or around):
                break
        else:
            found.append(row)
    return found
