"""The terminal summary's shape: values aligned beside their meaning, never a Python repr."""

from cli.summary import FIGURES, asset_lines, checks_line, format_value


def test_values_read_as_a_person_writes_them():
    assert format_value(2048) == "2,048"
    assert format_value({"sf_express": 181, "jd_logistics": 1179}) == (
        "sf_express 181, jd_logistics 1,179"
    )
    assert format_value({}) == "none" and format_value([]) == "none"
    assert format_value(True) == "yes" and format_value(1.50) == "1.5"
    assert format_value({"future_timestamp": [99, 2517]}, ids=True) == "future_timestamp (99, 2517)"


def test_each_figure_stands_beside_its_meaning_and_key():
    lines = list(asset_lines("purged_orders", {"purged": 2048, "seconds": 0.07}))
    assert lines == [
        "purged_orders",
        "         2,048  orders whose personal fields were cleared by this run [purged]",
    ]


def test_long_values_follow_their_meaning_and_ids_have_no_separators():
    lines = list(asset_lines("standing", {"stale_sample_order_ids": [3, 14, 1917, 20451]}))
    assert lines[1].endswith("some of them [stale_sample_order_ids]: 3, 14, 1917, 20451")


def test_an_asset_without_known_figures_prints_nothing():
    assert list(asset_lines("purged_orders", {"seconds": 1.0})) == []
    assert list(asset_lines("no_such_asset", {"rows": 1})) == []


def test_checks_are_one_line_unless_one_failed():
    assert checks_line([("a", True), ("b", True)]) == "checks: all 2 passed"
    assert checks_line([("a", True), ("b", False)]) == "checks: 1 of 2 FAILED: b"


def test_every_meaning_is_a_sentence_fragment_not_a_key():
    for figures in FIGURES.values():
        for key, meaning in figures:
            assert meaning and meaning != key and " " in meaning
