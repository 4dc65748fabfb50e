"""The tags every run carries: the policy it applied and what started it.

A run records its policy when it starts (orchestration/resources.py reads the policy once per run
and stamps these tags), so a run launched from any entry point — the schedule, a sensor, the CLI,
a UI launch or a backfill — names the policy every one of its steps used.
"""

from __future__ import annotations

from collections.abc import Mapping

from lifecycle.policy import Policy

TAG_TRIGGER = "lifecycle/trigger"
TAG_POLICY_VERSION = "lifecycle/policy_version"
TAG_POLICY_HASH = "lifecycle/policy_hash"
TAG_POLICY_PROBLEM = "lifecycle/policy_problem"
TRIGGERS = ("schedule", "sensor", "backfill", "cli", "demo", "hand")
HASH_CHARS = (
    12  # a tag the Runs list can show; the full hash is in the ledger and the run's metadata
)


def policy_tags(policy: Policy) -> dict[str, str]:
    """The policy's version and (short) hash, as run tags."""
    return {TAG_POLICY_VERSION: policy.version, TAG_POLICY_HASH: policy.sha256[:HASH_CHARS]}


def problem_tags(problem: str) -> dict[str, str]:
    """A policy that could not be used: its first problem, shortened, as a run tag."""
    return {TAG_POLICY_PROBLEM: problem[:200]}


def trigger_of(tags: Mapping[str, str]) -> str:
    """What started a run: our own tag, else Dagster's schedule, sensor or backfill tag, else by hand."""
    if TAG_TRIGGER in tags:
        return tags[TAG_TRIGGER]
    if "dagster/schedule_name" in tags:
        return "schedule"
    if "dagster/sensor_name" in tags:
        return "sensor"
    if "dagster/backfill" in tags:
        return "backfill"
    return "hand"


def trigger_tags(trigger: str) -> dict[str, str]:
    """The tag a launcher sets so the run history says who started a run."""
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}; one of {TRIGGERS}")
    return {TAG_TRIGGER: trigger}
