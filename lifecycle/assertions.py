"""What each of the night's checks asserts, in one sentence: the one source of the asset checks'
descriptions (what the Dagster UI shows) and of the report's "what it proves".

Plain Python, so the report and `lifecycle guard` read the sentences without loading Dagster or
the definitions; tests/test_definitions.py holds every asset check's description to this table.
"""

from lifecycle.guard.checks import (
    EXPORTS_ASSERTS,
    EXPORTS_CHECK,
    GUARD_CHECKS,
    RUN_HISTORY_ASSERTS,
    RUN_HISTORY_CHECK,
)
from lifecycle.ledger.chain import CHECK_NAME as LEDGER_CHECK

# check name -> the sentence, in the order of the definitions' checks.
ASSERTS: dict[str, str] = {
    "no_overdue_personal_data": (
        "No order past its window still holds personal fields once the purge has run."
    ),
    "cleared_orders_hold_no_personal_data": (
        "Every order marked cleared has each personal column, and its cases' notes, NULL."
    ),
    "erasure_within_deadline": (
        "Cleared values have left the data files within retention.erasure_deadline_hours."
    ),
    "handoff_has_only_allowed_columns": (
        "The hand-off has exactly the allow-listed columns; fields the policy leaves out are empty."
    ),
    "no_handoff_row_for_finished_orders": (
        "No row for an order delivered, cancelled or purged before the refresh began."
    ),
    "carrier_roles_see_only_their_own_rows": (
        "As each carrier role: its own rows and granted columns only, no other table, no writes."
    ),
    "no_overdue_data_requests": "Every request is answered within the policy's deadline.",
    **{check.name: check.asserts for check in GUARD_CHECKS},
    RUN_HISTORY_CHECK: RUN_HISTORY_ASSERTS,
    EXPORTS_CHECK: EXPORTS_ASSERTS,
    LEDGER_CHECK: (
        "No audit-trail row was edited, deleted, inserted around the chain or cut off since it was "
        "written: every hash and every anchored head still match."
    ),
    "dp_release_within_budget": (
        "No 28-day period spends more ε than its budget; no changed period is left unreleased."
    ),
    "server_log_keeps_no_values": (
        "The PostgreSQL server would not write failing statements' text or statement parameters "
        "to its log (log_min_error_statement, log_parameter_max_length[_on_error], log_statement)."
    ),
}
