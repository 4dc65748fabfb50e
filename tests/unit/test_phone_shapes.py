"""The phone shapes are generated from phonenumbers' numbering plans, never edited by hand: the
committed file is exactly what scripts/phone_shapes.py writes now."""

from __future__ import annotations

import re

import pytest

from lifecycle.guard import patterns
from scripts import phone_shapes


def test_committed_phone_shapes_equal_what_the_generator_writes():
    assert phone_shapes.OUTPUT.read_text() == phone_shapes.render(), (
        "lifecycle/guard/phone_shapes.json is stale or hand-edited: run "
        "`python -m scripts.phone_shapes` and commit the result"
    )


def test_every_region_of_the_corpus_gets_national_shapes():
    from tests.detection_corpus import LOCALES

    assert set(LOCALES.values()) <= set(phone_shapes.REGIONS)


@pytest.mark.parametrize(
    "value",
    [
        "+41 44 668 18 00",  # a country outside the corpus: every region's code is known
        "(0706)-589481",
        "068 2651233",
        "3509760207",
        "2125550123",
    ],
)
def test_generated_shapes_read_numbers_people_write(value):
    assert re.search(patterns.PHONE, f"call {value} today")


@pytest.mark.parametrize("value", ["351786844", "318051007733", "01067", "2024-01-05"])
def test_order_ids_tracking_numbers_postcodes_and_dates_are_not_phones(value):
    assert not re.search(patterns.PHONE, f"ref {value} ok")


def test_shapes_use_no_group_sqlalchemy_would_read_as_a_bind_parameter():
    for shape in patterns.PHONE_SHAPES.values():
        assert not re.search(r"\(\?:[0-9A-Za-z_]", shape)
