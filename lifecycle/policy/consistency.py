"""Rules that span sections of the policy: checked once the whole file has been validated.

Each problem is reported at the field a person has to change, which is not always the section that
noticed it: a correctable column missing from personal_columns is usually a typo in personal_columns.
"""

from __future__ import annotations

import difflib

from lifecycle.policy.acknowledgements import unacknowledged
from lifecycle.policy.raw import DEFAULT_PERSONAL


def cross_section_problems(policy) -> list[tuple[str, str]]:
    """(field, problem) pairs for the rules that no single section can check on its own."""
    return correctable_not_personal(policy, suspected_typos=False) + unacknowledged(policy)


def correctable_not_personal(policy, suspected_typos: bool) -> list[tuple[str, str]]:
    """Columns requests.correctable_columns names that raw.orders.personal_columns does not.

    When a personal column is a near miss of a reference name the correctable list holds
    (`reciever_name` for `receiver_name`), the mistake is the spelling in personal_columns, not the
    correctable list: with `suspected_typos` False such a column is left to the catalog check,
    which reports it as a column the table does not have, with the right name as a hint. Once the
    catalog has it (the shop's column really is spelt so), the check runs again with True.
    """
    personal = list(policy.raw.orders.personal_columns)
    correctable = policy.requests.correctable_columns
    explicit = "correctable_columns" in policy.requests.model_fields_set
    reference = set(DEFAULT_PERSONAL["orders"])
    problems = []
    for column in correctable:
        if column in personal:
            continue
        near = difflib.get_close_matches(column, personal, n=1, cutoff=0.8)
        suspected = bool(near) and near[0] not in correctable and column in reference
        if suspected and not suspected_typos:
            continue
        if explicit:  # the defaults follow a shop that does not hold them all
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(
                (
                    "requests",
                    f"correctable_columns: {column!r} is not one of raw.orders.personal_columns "
                    f"{personal}{hint}; only the order's receiving contact and address can be "
                    "corrected",
                )
            )
    return problems
