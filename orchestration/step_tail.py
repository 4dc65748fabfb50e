"""What Dagster writes after the guard's raw-value step has read the run history: the step's
outputs, its checks' evaluations, its own end and the run's end.

The step runs last (assets/guard.py gives it the lowest priority), so these few events are all of
a run the step cannot read the night it is written. Read the next night for the first time, their
tokens would be compared with the raw zone whole, once, on the night after every first night. So
the step renders them in advance, with Dagster's wording and its own names, and compares them
beside the history: the next night meets nothing it wrote new. Durations and process ids in them
are folded or cut like any (lifecycle/guard/provenance.py), so the zeros below stand for any.

Dagster's wording is copied from `dagster._core.events` and its executors; if a release changes
it, nothing is missed (the events are still read and compared the next night), only that night
compares them whole. `tests/dagster/test_guard_checks.py` notices, as the night after a first
night then makes a whole pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from lifecycle.checks import CheckResult

WHERE = "the raw-value step's own last events"


@dataclass(frozen=True)
class StepTail:
    """The names Dagster's last events of the step and of the run show."""

    job: str
    step: str
    outputs: tuple[str, ...]
    checks: tuple[tuple[str, str], ...]  # (check name, asset key as a user string)

    def texts(self) -> list[tuple[str, int, str]]:
        """The events' texts as the run history shows them when every check passes: (location,
        item, text) like the history's own."""
        passed = CheckResult().description()
        texts = [
            *self.outputs,
            *(
                f'Yielded output "{output}" of type "Any". (Type check passed).'
                for output in self.outputs
            ),
            *(
                f"Asset check '{check}' on '{asset}' passed. Description: '{passed}'"
                for check, asset in self.checks
            ),
            f'Finished execution of step "{self.step}" in 0ms.',
            "Finished steps in process (pid: 0) in 0ms",
            "Multiprocess executor: parent process exiting after 0ms (pid: 0)",
            f'Finished execution of run for "{self.job}".',
            "PIPELINE_SUCCESS",
        ]
        return [(WHERE, n, text) for n, text in enumerate(texts)]
