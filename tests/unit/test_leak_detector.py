"""The tests' leak detector: a planted value on its own is a leak; its digits inside a float are not."""

from tests.shop import PERSONAL, leaked


def test_a_value_standing_alone_is_found():
    assert set(leaked("shipped to postcode 200031, tel +86 138 0013 8000")) == {
        "200031",
        "+86 138 0013 8000",
    }


def test_digits_inside_numbers_and_ids_are_not_a_leak():
    noise = "duration_ms=14.684722000311012 run 9f2000310 ts 1795609099.2000315"
    assert leaked(noise) == []


def test_every_planted_value_is_detectable():
    for value in PERSONAL.values():
        assert leaked(f"[{value}]") == [value]
