"""Pure rules of the data requests: the policy section, payload redaction, and the sensor's planning."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle.policy import PolicyError, parse_policy
from lifecycle.requests import payload as request_payload
from sensors.requests import MAX_ATTEMPTS, MAX_REQUESTS_PER_RUN, RequestCursor, plan_tick


def policy_text(section: str) -> str:
    return f'version: "1"\nrequests:\n{section}'


def test_default_requests_section_has_a_15_day_deadline_and_the_receiving_fields():
    policy = parse_policy('version: "1"\n', Path("policy.yaml"))
    assert policy.requests.response_deadline_days == 15
    assert request_payload.correctable_columns(policy) == [
        "receiver_name",
        "receiver_phone",
        "receiver_email",
        "receiver_address",
        "receiver_postcode",
    ]


@pytest.mark.parametrize(
    "section, message",
    [
        (
            "  correctable_columns: [payment_reff]\n",
            "policy.yaml: requests: correctable_columns: 'payment_reff' is not one of raw.orders.personal_columns",
        ),
        (
            "  correctable_columns: [ship_region]\n",
            "'ship_region' is not one of raw.orders.personal_columns",
        ),
        (
            "  response_deadline_days: 0\n",
            "policy.yaml: requests.response_deadline_days: Input should be greater than 0",
        ),
        (
            "  response_deadlines: 15\n",
            "policy.yaml: requests.response_deadlines: Extra inputs are not permitted",
        ),
    ],
)
def test_a_bad_requests_section_names_the_field_and_the_fix(section, message):
    with pytest.raises(PolicyError) as failure:
        parse_policy(policy_text(section), Path("policy.yaml"))
    assert message in str(failure.value)


def test_correctable_columns_follow_a_shop_that_does_not_hold_them_all():
    policy = parse_policy(
        'version: "1"\nraw:\n  orders:\n    personal_columns: [receiver_name, payment_ref]\n',
        Path("policy.yaml"),
    )
    assert request_payload.correctable_columns(policy) == ["receiver_name"]


@pytest.mark.parametrize(
    "payload, kept",
    [
        (
            {"fields": {"receiver_phone": "+86 139 0000 1111"}, "order_ids": [3, 1]},
            {"fields": ["receiver_phone"], "order_ids": [3, 1], "values_removed": True},
        ),
        (
            {"fields": {"Wang Fang lives at": "12 Garden Road"}},
            {"fields": [], "values_removed": True},
        ),
        ("please change my phone to 139", {"values_removed": True}),
        (None, None),
        ({}, {}),
    ],
)
def test_an_answered_payload_keeps_field_names_and_order_ids_only(payload, kept):
    assert request_payload.redacted(payload) == kept


@pytest.mark.parametrize(
    "value, shown",
    [
        ("receiver_fone", "'receiver_fone'"),
        ("wang.fang@example.com", "(21 characters, not shown)"),
        (12345, "(5 characters, not shown)"),
    ],
)
def test_names_are_echoed_only_when_they_look_like_columns(value, shown):
    assert request_payload.shown(value) == shown


def test_requests_of_a_batch_in_flight_are_not_launched_again():
    cursor = RequestCursor(sequence=1, in_flight={"requests-1": [1, 2]})
    launch, given_up = plan_tick(cursor, open_ids=[1, 2, 3], finished=set())
    assert launch == [3] and given_up == []
    assert cursor.in_flight == {"requests-1": [1, 2]}


def test_requests_still_open_after_their_run_finished_are_retried_and_counted():
    cursor = RequestCursor(sequence=1, in_flight={"requests-1": [1, 2]})
    launch, _ = plan_tick(cursor, open_ids=[2, 3], finished={"requests-1"})
    assert launch == [2, 3] and cursor.attempts == {2: 1} and cursor.in_flight == {}


def test_a_request_that_failed_max_attempts_runs_is_given_up():
    cursor = RequestCursor(
        sequence=3, attempts={2: MAX_ATTEMPTS - 1}, in_flight={"requests-3": [2]}
    )
    launch, given_up = plan_tick(cursor, open_ids=[2, 5], finished={"requests-3"})
    assert launch == [5] and given_up == [2]


def test_attempts_of_answered_requests_are_forgotten_and_batches_are_bounded():
    cursor = RequestCursor(attempts={7: 1})
    launch, _ = plan_tick(
        cursor, open_ids=list(range(1000, 1000 + MAX_REQUESTS_PER_RUN + 5)), finished=set()
    )
    assert cursor.attempts == {} and len(launch) == MAX_REQUESTS_PER_RUN


def test_the_cursor_survives_a_round_trip():
    cursor = RequestCursor(sequence=4, in_flight={"requests-4-1": [9, 10]}, attempts={9: 2})
    assert RequestCursor.parse(cursor.dumps()) == cursor
