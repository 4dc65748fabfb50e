"""The error a policy file raises when it cannot be used."""

from __future__ import annotations


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file, the field and the fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))
