"""Verifying the hash-chained audit trail, and reading the heads that each night anchors.

Migrations 0051 and 0070 put two statement-level triggers on every chained table: before the
statement, an advisory lock per chain, so the ids one statement takes are never interleaved with
another writer's; after it, one link in lifecycle.ledger_links holding the id range, the row
count, the SHA-256 of the rows and the previous link's hash. The rows are hashed in id order in
the form their link was written in: form 3 (migration 0130), each row's key columns and, only when
they differ from the row before, the rest of its columns, all as binary send forms; form 2 (0070),
every row's whole binary send form; form 1 (0051), their text digests. Cost is one aggregate and
one digest per statement, never a round trip or a digest per row.

Anyone who can write lifecycle.* could rebuild the whole chain after an edit, so each night's
heads are also recorded in the run history (the `ledger_anchor` asset's metadata): verification
checks that every anchored link still has its anchored hash. Findings name a chain, a link, a
row id and a run id, never a value.

Two ways to verify (docs/compliance.md): the full recompute re-hashes every link's rows, a chain
with many rows in two halves on two connections at once; the sealed verification re-hashes only
the links written since the last trusted seal and proves the sealed range untouched with one
pass that reads no column (lifecycle/ledger/seals.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.ledger import seals
from lifecycle.ledger.anchored import AnchoredText
from lifecycle.ledger.seals import SealAnchor

# The nightly asset check that runs `verify`; the report reads its last verdict from the history.
CHECK_NAME = "ledger_chain_intact"


@dataclass(frozen=True)
class Head(AnchoredText):
    """The last link of one chain: what a night anchors outside the database."""

    chain: str
    link_seq: int
    link_hash: str  # hex


@dataclass(frozen=True)
class Break:
    """The first thing found wrong in a chain: where (link, row id, run id) and what kind."""

    chain: str
    link_seq: int | None
    row_id: int | None
    run_id: str | None
    kind: str

    def line(self) -> str:
        link = f"link {self.link_seq}" if self.link_seq is not None else "no link"
        return (
            f"{self.chain}: {link}, row id {self.row_id if self.row_id is not None else '-'}, "
            f"run {self.run_id or '-'}: {self.kind}"
        )


# How a chain is verified when there is nothing to explain (other modes name their reason):
# re-hashed in full (no seal yet, or the periodic full pass due), or from its last seal.
FULL, FULL_NO_SEAL, FULL_DUE, SEALED = "full", "full (no seal)", "full (due)", "sealed"
PLAIN_MODES = (FULL, FULL_NO_SEAL, FULL_DUE, SEALED)


@dataclass(frozen=True)
class ChainRange:
    """What was verified in one chain: links, rows, and the period they cover; how many of the
    rows were re-hashed (the others were proven untouched since a seal), and how."""

    chain: str
    links: int
    rows: int
    first_seq: int | None
    last_seq: int | None
    first_recorded: datetime | None
    last_recorded: datetime | None
    rehashed: int | None = None  # None: all `rows`
    mode: str = FULL


@dataclass
class Verification:
    """The verdict over every chain: ranges verified, anchors checked, and the breaks found."""

    ranges: list[ChainRange] = field(default_factory=list)
    anchors_checked: int = 0
    breaks: list[Break] = field(default_factory=list)
    since: datetime | None = None
    new_seals: list[seals.Seal] = field(default_factory=list)  # tonight's, when asked to seal

    @property
    def intact(self) -> bool:
        return not self.breaks

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.ranges)

    @property
    def rehashed(self) -> int:
        return sum(r.rows if r.rehashed is None else r.rehashed for r in self.ranges)

    def summary(self) -> str:
        """One line for a person: what was verified, or the first broken link."""
        if self.breaks:
            return f"broken: {self.breaks[0].line()}"
        spans = [r.first_recorded for r in self.ranges if r.first_recorded] or [None]
        ends = [r.last_recorded for r in self.ranges if r.last_recorded] or [None]
        period = (
            f" recorded {min(spans):%Y-%m-%d %H:%M} to {max(ends):%Y-%m-%d %H:%M} UTC"
            if spans[0] and ends[0]
            else ""
        )
        # The same words every night, whatever was sealed: only the counts change, and the
        # guard compares counts folded, so a night with seals writes no text a first night did not.
        return (
            f"intact: {self.rows:,} rows in {sum(r.links for r in self.ranges):,} links of "
            f"{len(self.ranges)} chains{period} ({self.rehashed:,} re-hashed, "
            f"{self.rows - self.rehashed:,} untouched since their seal); "
            f"{self.anchors_checked} anchors match"
        )

    def metadata(self) -> dict[str, object]:
        """Counts, link numbers and ids for the check's metadata."""
        data: dict[str, object] = {
            "intact": self.intact,
            "rows_verified": self.rows,
            "rows_rehashed": self.rehashed,
            "anchors_checked": self.anchors_checked,
            "modes": {r.chain: r.mode for r in self.ranges},
            "verified": {
                # The mode goes with the range, so the report says how each chain was verified.
                r.chain: verified_line(r.first_seq, r.last_seq, r.rows, r.mode)
                if r.links
                else "empty"
                for r in self.ranges
            },
        }
        if self.breaks:
            data["first_break"] = self.breaks[0].line()
        return data


def verified_line(first_seq: int, last_seq: int, rows: int, mode: str) -> str:
    """How one chain was verified, as the check's metadata shows it."""
    return f"links {first_seq}..{last_seq}, {rows} rows, {mode}"


# The texts a night's verification writes besides its counts, in every plain mode, for the
# guard's run-history check to compare on any night (lifecycle/guard/raw_values.py): the first
# night that seals meets none of them new.
REGULAR_TEXTS = (*PLAIN_MODES, *(verified_line(0, 0, 0, mode) for mode in PLAIN_MODES))


# A chain whose trigger predates form 3 (migration 0130) has no link of that form: a placeholder
# keeps the verification statement well-typed, and its form-3 branch never runs.
_NO_FORM_3 = "ROW(NULL::int)"

# The chained tables and their canonical row text, as the migration gave them to the triggers.
_CHAINS = sa.text("""
    SELECT format('%I.%I', n.nspname, c.relname) AS table_name, t.tgargs, t.tgenabled <> 'D' AS enabled
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE t.tgname = 'ledger_link' AND NOT t.tgisinternal
""")


@dataclass(frozen=True)
class Chain:
    """One chained table as its trigger defines it: the row forms of every link form."""

    name: str
    table: str
    id_column: str
    binary: str  # form 2: an expression giving one row's bytes
    text: str  # form 1: an expression giving one row's canonical text
    enabled: bool
    key: str = _NO_FORM_3  # form 3: the row of columns sent for every row
    rest: str = _NO_FORM_3  # form 3: the row of columns sent when it differs from the row before


def chains(conn) -> list[Chain]:
    """Every chained table, read back from its `ledger_link` trigger's arguments."""
    found = []
    for table, args, enabled in conn.execute(_CHAINS):
        name, id_column, _run, binary, text, *form_3 = bytes(args).decode().split("\x00")[:7]
        found.append(Chain(name, table, id_column, binary, text, enabled, *form_3))
    return sorted(found, key=lambda c: c.name)


_HEADS = sa.text("""
    SELECT DISTINCT ON (chain) chain, link_seq, encode(link_hash, 'hex') AS link_hash
    FROM lifecycle.ledger_links ORDER BY chain, link_seq DESC
""")
_FROM_SEQ = sa.text("""
    SELECT coalesce(min(link_seq), 1 + coalesce(max(link_seq), 0)) FROM lifecycle.ledger_links
    WHERE chain = :chain AND (CAST(:since AS timestamptz) IS NULL OR recorded_at >= :since)
""")
_LINK_ROWS = sa.text("""
    SELECT link_seq, rows FROM lifecycle.ledger_links
    WHERE chain = :chain AND link_seq BETWEEN :from_seq AND :to_seq ORDER BY link_seq
""")

# Every link of the chain is checked against its fields and its neighbours (links are one per
# statement, few), and each gap between links is probed for rows in no link (one index probe per
# link); the rows are re-hashed only for the links :from_seq..:to_seq, each through an id-range
# scan that delivers them in id order (no sort), in the form its link was written in (only that
# branch runs; a link outside the range skips both). Links up to :sealed_seq are covered by a seal
# (lifecycle/ledger/seals.py) and counted as verified without being re-hashed.
_VERIFY = """
WITH links AS (
    SELECT l.*,
           lag(link_hash) OVER w AS before_hash,
           lag(link_seq) OVER w AS before_seq,
           lead(first_id) OVER w AS next_first
    FROM lifecycle.ledger_links l WHERE chain = :chain
    WINDOW w AS (ORDER BY link_seq)
), checked AS (
    SELECT l.link_seq, l.first_id, l.last_id, l.run_id, l.rows, l.recorded_at,
           l.link_seq BETWEEN :from_seq AND :to_seq AS rehashed,
           l.link_seq <= :sealed_seq OR l.link_seq BETWEEN :from_seq AND :to_seq AS covered,
           l.link_hash = lifecycle.ledger_link_hash(l.chain, l.link_seq, l.first_id, l.last_id,
                                                    l.rows, l.content_hash, l.prev_hash) AS link_ok,
           l.prev_hash IS NOT DISTINCT FROM l.before_hash
               AND l.link_seq = coalesce(l.before_seq, 0) + 1 AS order_ok,
           r.n, coalesce(r.content = l.content_hash, false) AS content_ok,
           (SELECT min({id}) FROM {table} t
             WHERE t.{id} > l.last_id AND t.{id} < coalesce(l.next_first, 9223372036854775807)) AS stray
    FROM links l
    LEFT JOIN LATERAL (
        SELECT * FROM (
            SELECT count(*) AS n, sha256(string_agg(d, ''::bytea)) AS content
            FROM (SELECT {binary} AS d FROM {table} t
                  WHERE t.{id} BETWEEN l.first_id AND l.last_id ORDER BY t.{id}) s
        ) f2 WHERE l.form = 2 AND l.link_seq BETWEEN :from_seq AND :to_seq
        UNION ALL
        SELECT * FROM (
            SELECT count(*) AS n,
                   sha256(string_agg(CASE WHEN k *= p THEN b || '\\x00'::bytea
                                          ELSE b || '\\x01'::bytea || record_send(k) END,
                                     ''::bytea)) AS content
            FROM (SELECT record_send({key}) AS b, {rest} AS k, lag({rest}) OVER (ORDER BY t.{id}) AS p
                  FROM {table} t WHERE t.{id} BETWEEN l.first_id AND l.last_id) s
        ) f3 WHERE l.form = 3 AND l.link_seq BETWEEN :from_seq AND :to_seq
        UNION ALL
        SELECT * FROM (
            SELECT count(*) AS n, sha256(string_agg(d, ''::bytea)) AS content
            FROM (SELECT sha256(textsend({text})) AS d FROM {table} t
                  WHERE t.{id} BETWEEN l.first_id AND l.last_id ORDER BY t.{id}) s
        ) f1 WHERE l.form = 1 AND l.link_seq BETWEEN :from_seq AND :to_seq
    ) r ON true
)
SELECT (SELECT count(*) FROM checked WHERE covered) AS links,
       (SELECT coalesce(sum(rows), 0) FROM checked WHERE covered) AS rows,
       (SELECT coalesce(sum(rows), 0) FROM checked WHERE rehashed) AS rehashed_rows,
       (SELECT min(link_seq) FROM checked WHERE covered) AS first_seq,
       (SELECT max(link_seq) FROM checked WHERE covered) AS last_seq,
       (SELECT min(recorded_at) FROM checked WHERE covered) AS first_recorded,
       (SELECT max(recorded_at) FROM checked WHERE covered) AS last_recorded,
       (SELECT min({id}) FROM {table} t
         WHERE t.{id} < coalesce((SELECT min(first_id) FROM lifecycle.ledger_links WHERE chain = :chain),
                                 9223372036854775807)) AS stray_before,
       b.*
FROM (SELECT 1) one LEFT JOIN LATERAL (
    SELECT link_seq, first_id, last_id, run_id, rows AS link_rows, n, rehashed, link_ok, order_ok,
           content_ok, stray
    FROM checked
    WHERE NOT (link_ok AND order_ok) OR (rehashed AND NOT (content_ok AND n = rows))
          OR stray IS NOT NULL
    ORDER BY link_seq LIMIT 1
) b ON true
"""

# A chain with more rows than this to re-hash is split in two halves verified on two connections
# at once (the server hashes one statement on one core); different chains also run side by side.
SPLIT_ROWS = 200_000
WORKERS = 2
_LAST = 9223372036854775807


# Which shop a night's anchors belong to: one run history may serve several shop databases (a
# shared Dagster storage, a test server), and an anchor of another shop is no evidence about this one.
_SHOP = sa.text("""
    SELECT encode(sha256(convert_to(current_database() || '/' || coalesce((
        SELECT CAST(extract(epoch FROM min(installed_at)) AS text) FROM lifecycle.installation
    ), ''), 'UTF8')), 'hex')
""")


def shop_identity(engine: Engine) -> str:
    """A stable digest naming this shop database (its name and when lifecycle was installed)."""
    with engine.connect() as conn:
        return conn.execute(_SHOP).scalar()[:16]


def heads(engine: Engine) -> list[Head]:
    """The last link of every chain now: what tonight's run records as its anchor."""
    with engine.connect() as conn:
        return [Head(**row) for row in conn.execute(_HEADS).mappings()]


def _first_break(chain: str, row) -> Break | None:
    if row.link_seq is None:
        return None
    if not row.link_ok:
        kind = "the link itself was altered (its hash does not match its fields)"
    elif not row.order_ok:
        kind = "the link before it is missing, altered or out of order"
    elif row.rehashed and row.n < row.link_rows:
        kind = f"{row.link_rows - row.n} of its {row.link_rows} rows are missing (deleted)"
    elif row.rehashed and row.n > row.link_rows:
        kind = f"{row.n - row.link_rows} rows were added to its id range"
    elif row.rehashed and not row.content_ok:
        kind = "a row in its id range was altered or reordered"
    else:
        return Break(
            chain,
            row.link_seq,
            row.stray,
            row.run_id,
            "a row after it belongs to no link (inserted around the triggers)",
        )
    return Break(chain, row.link_seq, row.first_id, row.run_id, kind)


@dataclass(frozen=True)
class _Part:
    """One statement of the verification: a chain's links to re-hash, and what a seal covers."""

    chain: Chain
    from_seq: int
    to_seq: int
    sealed_seq: int

    def run(self, conn):
        sql = _VERIFY.format(
            table=self.chain.table,
            id=f'"{self.chain.id_column}"',
            binary=self.chain.binary,
            text=self.chain.text,
            key=self.chain.key,
            rest=self.chain.rest,
        )
        params = {
            "chain": self.chain.name,
            "from_seq": self.from_seq,
            "to_seq": self.to_seq,
            "sealed_seq": self.sealed_seq,
        }
        return conn.execute(sa.text(sql), params).one()


def _parts(conn, chain: Chain, from_seq: int, to_seq: int, sealed_seq: int) -> list[_Part]:
    """The chain's statements: one, or two halves (by rows) when it has many rows to re-hash."""
    links = conn.execute(
        _LINK_ROWS, {"chain": chain.name, "from_seq": from_seq, "to_seq": to_seq}
    ).all()
    total = sum(rows for _seq, rows in links)
    if total <= SPLIT_ROWS or len(links) < 2:
        return [_Part(chain, from_seq, to_seq, sealed_seq)]
    running = 0
    seq = from_seq
    for seq, rows in links[:-1]:  # noqa: B007 (the split link is the loop's last)
        running += rows
        if running * 2 >= total:
            break
    return [_Part(chain, from_seq, seq, sealed_seq), _Part(chain, seq + 1, to_seq, 0)]


def _run_parts(engine: Engine, conn, parts: list[_Part]) -> list:
    """Every statement, two at a time on their own connections when there are several."""
    if len(parts) == 1:
        return [parts[0].run(conn)]

    def on_own_connection(part: _Part):
        with engine.connect() as own:
            return part.run(own)

    # Each statement has its own snapshot: a link committed meanwhile is simply seen by some
    # (every statement checks the links it sees; none re-hashes past the seal point's head).
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(on_own_connection, parts))


def _merge(chain: str, rows: list, mode: str) -> tuple[ChainRange, Break | None, int | None]:
    """One chain's range, first break and stray row before its first link, from its parts."""

    def pick(values, fn):
        present = [v for v in values if v is not None]
        return fn(present) if present else None

    span = ChainRange(
        chain,
        sum(r.links for r in rows),
        int(sum(r.rows for r in rows)),
        pick([r.first_seq for r in rows], min),
        pick([r.last_seq for r in rows], max),
        pick([r.first_recorded for r in rows], min),
        pick([r.last_recorded for r in rows], max),
        rehashed=int(sum(r.rehashed_rows for r in rows)),
        mode=mode,
    )
    found = [b for b in (_first_break(chain, r) for r in rows) if b is not None]
    first = min(found, key=lambda b: b.link_seq or 0) if found else None
    return span, first, pick([r.stray_before for r in rows], min)


def verify(
    engine: Engine,
    anchors: list[Head] | None = None,
    since: datetime | None = None,
    *,
    seal_anchors: list[SealAnchor] | None = None,
    full: bool = False,
    full_every: timedelta | None = None,
    now: datetime | None = None,
    seal: bool = False,
) -> Verification:
    """Verifies every chain and checks each anchor against the link it names.

    A chain with a trusted seal (one of `seal_anchors` whose fields still match) is verified
    sealed: one pass proves the sealed range untouched and only later links are re-hashed; with
    `full`, when no seal is trusted, when the seal's last full recompute is `full_every` old, or
    when the pass cannot prove the range, every link recorded since `since` is re-hashed. With
    `seal`, the result carries tonight's seals for the chains found intact (to be saved and
    anchored by the caller)."""
    if seal and since is not None:
        raise ValueError("a seal covers every link: verify without `since` to seal")
    result = Verification(since=since)
    with engine.connect() as conn:
        found = chains(conn)
        trust = seals.trusted(conn, seal_anchors or [])
        now_here = seals.here(conn) if seal or trust.seals else None
        point = seals.seal_point(conn, now_here) if seal else {}
        for anchor, forged in trust.forged:
            result.breaks.append(
                Break(
                    anchor.chain,
                    forged.link_seq if forged else None,
                    None,
                    None,
                    f"seal {anchor.seal_id} differs from the one the run history recorded (forged)",
                )
            )
        now = now or conn.execute(sa.text("SELECT now()")).scalar()
        plan: list[tuple[Chain, list[_Part], str, seals.Seal | None]] = []
        for each in found:
            if not each.enabled:
                result.breaks.append(
                    Break(
                        each.name, None, None, None, "its trigger is disabled: inserts go unlinked"
                    )
                )
            to_seq = point[each.name].link_seq if each.name in point else _LAST
            sealed = None if full else trust.seals.get(each.name)
            if sealed is None:
                mode = FULL if full else FULL_NO_SEAL
            elif full_every is not None and sealed.full_due(now, full_every):
                mode = FULL_DUE
            else:
                why = seals.elsewhere(sealed, now_here) or seals.unproven(
                    conn, each.table, each.id_column, sealed
                )
                mode = SEALED if why is None else f"full ({why})"
            if mode == SEALED:
                from_seq, sealed_seq = sealed.link_seq + 1, sealed.link_seq
            else:
                from_seq = conn.execute(_FROM_SEQ, {"chain": each.name, "since": since}).scalar()
                sealed_seq = 0
            plan.append((each, _parts(conn, each, from_seq, to_seq, sealed_seq), mode, sealed))
        parts = [part for _each, chain_parts, _mode, _sealed in plan for part in chain_parts]
        outcomes = dict(zip(parts, _run_parts(engine, conn, parts), strict=True))
        for each, chain_parts, mode, _sealed in plan:
            span, first, stray_before = _merge(each.name, [outcomes[p] for p in chain_parts], mode)
            result.ranges.append(span)
            if first is None and stray_before is not None:
                first = Break(
                    each.name,
                    None,
                    stray_before,
                    None,
                    "a row before the first link belongs to no link",
                )
            if first:
                result.breaks.append(first)
        anchored = list(anchors or []) + [
            Head(s.chain, s.link_seq, s.link_hash) for s in trust.seals.values()
        ]
        result.breaks.extend(_check_anchors(conn, anchored, result))
    result.breaks.sort(key=lambda b: (b.chain, b.link_seq or 0))
    broken = {b.chain for b in result.breaks}
    for each, _chain_parts, mode, sealed in plan:
        at = point.get(each.name)
        if at is None or each.name in broken:
            continue
        full_at = sealed.full_at if mode == SEALED and sealed else at.verified_at
        result.new_seals.append(replace(at, full_at=full_at))
    return result


_ANCHORED = sa.text("""
    SELECT a.chain, a.seq, a.digest, l.run_id, l.first_id,
           l.link_seq IS NOT NULL AS present, encode(l.link_hash, 'hex') = a.digest AS same
    FROM unnest(CAST(:chains AS text[]), CAST(:seqs AS bigint[]), CAST(:digests AS text[])) AS a(chain, seq, digest)
    LEFT JOIN lifecycle.ledger_links l ON l.chain = a.chain AND l.link_seq = a.seq
    ORDER BY a.chain, a.seq
""")


def _check_anchors(conn, anchors: list[Head], result: Verification) -> list[Break]:
    if not anchors:
        return []
    rows = conn.execute(
        _ANCHORED,
        {
            "chains": [a.chain for a in anchors],
            "seqs": [a.link_seq for a in anchors],
            "digests": [a.link_hash for a in anchors],
        },
    ).all()
    result.anchors_checked = len(rows)
    breaks = []
    for row in rows:
        if not row.present:
            breaks.append(
                Break(
                    row.chain,
                    row.seq,
                    None,
                    None,
                    "an anchored link is gone (the chain was truncated after it)",
                )
            )
        elif not row.same:
            breaks.append(
                Break(
                    row.chain,
                    row.seq,
                    row.first_id,
                    row.run_id,
                    "the link differs from the hash anchored in the run history (chain rewritten)",
                )
            )
    return breaks[:1] if breaks else []
