"""The run log's tokens as the nightly compares them (lifecycle/guard/provenance.py): spans the
project or Dagster wrote are cut out only when they are one of the records named, digits are
folded, phones stay exact, and a raw value written into a log text still meets itself."""

import base64
from datetime import UTC, date, datetime, timedelta

import pytest

from lifecycle.guard.provenance import Provenance, fold, log_tokens
from lifecycle.guard.raw_values import OWN_WORDS
from lifecycle.guard.tokens import TEXT_GRAM_WORDS, normalise, phone_variants, tokens
from lifecycle.ledger.chain import PLAIN_MODES, ChainRange, Head, Verification
from lifecycle.retention import erasure
from lifecycle.sales.daily import REGULAR_REASON, SalesBuild
from orchestration.anchors import anchor_metadata
from orchestration.history import recorded_names
from tests.shop import PERSONAL

RUN = "2eaf580e-e83d-43aa-8305-0ec0cf68363f"
OTHER = "ce7c2a1f-0b3d-4c5e-8f9a-1b2c3d4e5f6a"
HASH = "2ea703340f5e5f869e355c5083f5267ba89a425e45f498ebfd9f3680903196a2"
KNOWN = Provenance(frozenset({RUN}), frozenset({HASH}), frozenset({"yofeljeu"}))


def bodies(text: str, provenance: Provenance = KNOWN) -> set[str]:
    return {token for _, token in log_tokens(text, provenance)}


def test_every_run_of_digits_folds_to_one_zero():
    assert fold("in 879ms") == fold("in 86ms") == "in 0ms"
    assert fold("pay 7781 2231") == "pay 0"
    # A count with a thousands separator folds like one without (normalised `3 001`).
    assert fold("utc 3 001 re hashed") == fold("utc 0 re hashed") == "utc 0 re hashed"
    # Only whole words merge: a word holding letters keeps its place.
    assert fold("a1 2 3b") == "a0 0 0b" and fold("flat 12 34 56 main st 7") == "flat 0 main st 0"


def test_a_count_with_more_digit_groups_makes_no_new_token_in_a_long_text():
    """Runs of words are formed after folding: `85` and `3,001` are one word each, so the runs of
    up to TEXT_GRAM_WORDS words ending beside the count are the same on both nights."""

    def ledger(count: str) -> str:
        return (
            f"the ledger verified chain purge_ledger from its first link: {count} re-hashed, "
            "every link and seal matched its content and the previous link of the chain"
        )

    assert len(normalise(ledger("85")).split()) > TEXT_GRAM_WORDS
    assert bodies(ledger("3,001")) == bodies(ledger("85")) == bodies(ledger("1,204,777"))


def _compared_on_any_night() -> set[str]:
    return set().union(*(bodies(text) for _, _, text in OWN_WORDS))


@pytest.mark.parametrize("days", [1, 3, 27])
def test_a_regular_nights_sales_line_is_compared_on_any_night(days):
    """A first night builds everything; the next writes the regular line for the first time,
    which, never compared, would send its raw pass over the whole zone."""
    build = SalesBuild(
        run_id=RUN,
        mode="incremental",
        reason=REGULAR_REASON,
        last_complete_day=date(2026, 12, 5),
        timezone="UTC",
        k=5,
        days=[date(2026, 12, 5) - timedelta(days=n) for n in range(days)],
    )
    for text in (build.summary(), build.mode, build.reason):
        assert bodies(text) <= _compared_on_any_night(), text


def test_a_night_that_clears_nothing_writes_only_texts_compared_on_any_night():
    """A first night rewrites; the first night after it that cleared nothing wrote its reason and
    statistics for the first time (measured: 17 never-compared tokens, one whole pass)."""
    report = erasure.ErasureReport(ran=False, reason=erasure.NOTHING_CLEARED)
    texts = [v for v in report.metadata().values() if isinstance(v, str) and v]
    assert erasure.NOTHING_CLEARED in texts and erasure.NOT_NEEDED in texts
    for text in texts:
        assert bodies(text) <= _compared_on_any_night(), text


@pytest.mark.parametrize("mode", PLAIN_MODES)
@pytest.mark.parametrize(("rows", "rehashed"), [(29_293, None), (29_293, 3_001), (85, 85)])
def test_the_ledger_checks_texts_are_the_same_words_whatever_was_sealed(mode, rows, rehashed):
    """The check's line says how many rows were re-hashed and how many a seal vouched for on
    every night (it named the seal only when one was used), and its per-chain line is among the
    texts compared on any night, in every plain mode."""
    at = datetime(2026, 12, 6, 6, 29, tzinfo=UTC)
    chain = ChainRange("purge_ledger", 4, rows, 1, 4, at, at, rehashed, mode)
    verified = Verification(ranges=[chain], anchors_checked=6)
    first = Verification(ranges=[ChainRange("purge_ledger", 1, 7, 1, 1, at, at)], anchors_checked=2)
    assert bodies(verified.summary()) == bodies(first.summary())
    for text in verified.metadata()["verified"].values():
        assert bodies(text) <= _compared_on_any_night(), text
    assert bodies(mode) <= _compared_on_any_night()


@pytest.mark.parametrize(
    "value",
    [
        # A bare number is not compared in a log (docs/guard.md), so it is not written here.
        *(v for v in PERSONAL.values() if not normalise(v).replace(" ", "").isdigit()),
        "Flat 12 34 Main St 7",
        "a1 2 3b",
        "7 Rue 12",
        "Apt 3-4, 12 Garden Road 5",
    ],
)
@pytest.mark.parametrize(
    "around",
    ["{}", "sent to {} today", "order 17 ships to {} 3,001 times", "12 34 {} 56", "x1 {} 2y"],
)
def test_a_value_beside_digits_still_meets_its_folded_form(value, around):
    """Folding before the runs are formed is sound: a raw value written among other digits (which
    merge with its own leading or trailing digit groups) still folds to one of the text's runs."""
    norm = normalise(value)
    assert len(fold(norm).split()) <= TEXT_GRAM_WORDS
    expected = "f:" + fold(norm) if any(c.isdigit() for c in norm) else "v:" + norm
    assert expected in bodies(around.format(value)), (value, around)


def test_a_run_id_of_this_instance_is_cut_out_and_no_token_spans_the_cut():
    tokens = bodies(f"Started run {RUN} for job nightly_lifecycle")
    assert not any("e83d" in t or "0ec0cf" in t or "2eaf" in t for t in tokens)
    assert "v:started run" in tokens and "v:for job nightly lifecycle" in tokens
    assert not any("run for" in t for t in tokens)  # the words either side are not joined


def test_a_string_shaped_like_a_run_id_or_hash_but_not_one_is_compared():
    assert "f:" + fold(normalise(OTHER)) in bodies(OTHER)
    assert "f:" + fold(HASH[::-1]) in bodies(HASH[::-1])


def test_recorded_hashes_and_compute_log_keys_are_cut_out():
    tokens = bodies(f"purge_ledger:6:{HASH}")
    assert "v:purge ledger" in tokens and not any("ea" in t for t in tokens)
    assert bodies("yofeljeu") == set()
    assert bodies("yofeljeu", Provenance()) == {"v:yofeljeu"}


def test_durations_and_process_ids_fold_to_the_same_tokens_every_night():
    assert bodies('Finished execution of step "purged_orders" in 86ms.') == bodies(
        'Finished execution of step "purged_orders" in 879ms.'
    )
    assert bodies("Executing steps in process (pid: 11152)") == bodies(
        "Executing steps in process (pid: 4)"
    )


def test_a_personal_value_in_a_log_text_still_meets_its_own_form():
    """The raw side makes `v:` + the normal form, and for a value with digits `f:` + its folded
    form (fingerprints._folded_branch): one of them is among the text's tokens."""
    for value in PERSONAL.values():
        norm = normalise(value)
        expected = "f:" + fold(norm) if any(c.isdigit() for c in norm) else "v:" + norm
        if norm.replace(" ", "").isdigit():
            continue  # a bare number is not compared in a log (docs/guard.md)
        assert expected in bodies(value), value
        assert expected in bodies(f"sent to {value}") or len(norm.split()) > 3, value


def test_phones_are_compared_by_their_exact_digits():
    tokens = bodies(f"call {PERSONAL['receiver_phone']} now")
    assert {"p:" + v for v in phone_variants(PERSONAL["receiver_phone"])} <= tokens


def test_a_timestamp_is_cut_out_and_its_fraction_is_no_phone():
    tokens = bodies("as of 2026-12-03T17:48:51.938225+00:00")
    assert tokens == {"v:as of", "v:as", "v:of"}
    assert bodies("cleared since 2026-12-03 17:15 UTC") == bodies(
        "cleared since 2025-01-09 02:01 UTC"
    )
    assert "p:51938225" in bodies("call 51.938225")  # not a timestamp: still a phone form


def test_a_raw_value_of_more_than_four_words_inside_a_log_text_is_one_of_its_tokens():
    """Analytics texts are tokenized in runs of up to 4 words (in SQL); a log text, hashed in
    Python, in runs of up to TEXT_GRAM_WORDS, so a long address written into a sentence is met."""
    sentence = f"shipped to {PERSONAL['receiver_address']} today"
    address = "f:" + fold(normalise(PERSONAL["receiver_address"]))
    assert len(normalise(PERSONAL["receiver_address"]).split()) == 5
    assert address in bodies(sentence)
    assert ("in_text", "v:" + normalise(PERSONAL["receiver_address"])) not in tokens(sentence)
    assert ("in_text", "v:" + normalise(PERSONAL["receiver_address"])) in tokens(
        sentence, TEXT_GRAM_WORDS
    )


def test_a_nights_ledger_anchor_texts_hold_no_token_the_previous_nights_did_not():
    """The anchor's per-chain texts name the whole link hash, which the ledger holds and the scan
    cuts out; a 16-hex prefix made a token no clean pass had compared, every night."""
    other = "9" * 64
    nights = [
        anchor_metadata([Head(chain="purge_ledger", link_seq=seq, link_hash=h)], "shop")
        for seq, h in ((12, HASH), (13, other))
    ]
    seen = [
        {t for value in night.values() if isinstance(value, str) for t in bodies(value, known)}
        for night, known in zip(nights, (KNOWN, Provenance(hashes=frozenset({other}))), strict=True)
    ]
    assert seen[0] and seen[1] <= seen[0]


def test_the_duration_of_dagsters_step_finished_message_is_cut_out_and_nowhere_else():
    def message(duration: str) -> str:
        return f'Finished execution of step "due_orders" in {duration}.'

    forms = [bodies(message(d)) for d in ("837ms", "1.83s", "4m52s", "1h4m", "0.83ms")]
    assert all(tokens == forms[0] for tokens in forms) and "v:due orders in" in forms[0]
    # The same words around a duration in any other text are compared, folded, as before.
    assert "f:due orders in 0 0s" in bodies('step "due_orders" in 1.83s')
    # Dagster's run-level messages with a duration, and a resource's init time, alike.
    runs = [
        bodies(f"Finished steps in process (pid: {pid}) in {d}")
        for pid, d in ((4, "48.87s"), (11152, "812ms"), (7, "1m3s"))
    ]
    assert all(tokens == runs[0] for tokens in runs) and "v:finished steps in process" in runs[0]
    assert bodies("Multiprocess executor: parent process exiting after 2.4s (pid: 9)") == bodies(
        "Multiprocess executor: parent process exiting after 950ms (pid: 12)"
    )
    assert bodies("12ms") == bodies("1.2s") == set()
    # Not a duration's shape: compared.
    assert "f:due orders in 0 main st" in bodies(message("1 Main St"))


def test_an_embedded_texts_payload_is_compared_decoded_and_its_base64_is_not():
    """The sales chart's SVG sits in its markdown as a base64 data URI: its characters made new
    tokens whenever the picture changed, and a value inside it was visible only decoded."""

    def chart(label: str) -> str:
        svg = f'<svg xmlns="http://www.w3.org/2000/svg"><text x="4">{label}</text></svg>'
        return f"![units](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})"

    name = PERSONAL["receiver_name"]
    assert "v:" + normalise(name) in bodies(chart(name))
    assert bodies(chart("SH: 1,204 units")) == bodies(chart("SH: 3,187 units"))

    def first_word(payload: bytes) -> str:  # the payload's base64, as the text tokenizer reads it
        return fold(normalise(base64.b64encode(payload).decode())).split()[0]

    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><text x="4">SH</text></svg>'
    assert not any(first_word(svg) in t for t in bodies(chart("SH")))
    # Not text (an image's bytes): compared as written, as before.
    png = bytes(range(200, 256))
    written = f"![p](data:image/png;base64,{base64.b64encode(png).decode()})"
    assert any(first_word(png) in t for t in bodies(written))


def test_names_are_read_from_dagsters_classes_and_never_from_a_table_rows_cells():
    """A step key or an asset key's path is the project's name; a cell of a table row under a
    key spelled like a field (`label`) is data, so it is never cut out as a name."""
    event = {
        "__class__": "EventLogEntry",
        "step_key": "refreshed_sales_volume",
        "asset_key": {"__class__": "AssetKey", "path": ["weekly_demand"]},
        "metadata": {
            "preview": {
                "__class__": "TableRecord",
                "data": {"label": "maria_silva", "step_key": "rua_x/12"},
            }
        },
    }
    assert set(recorded_names(event)) == {"refreshed_sales_volume", "weekly_demand"}
