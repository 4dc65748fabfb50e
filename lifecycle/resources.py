"""Dagster resources: one per external system the assets touch."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from sqlalchemy.engine import Engine

from lifecycle import db
from lifecycle.policy import Policy, PolicyError, check_policy_against_database, load_policy
from lifecycle.settings import Settings


class ShopDatabase(dg.ConfigurableResource):
    """The shop's PostgreSQL and the policy file that governs it.

    Left empty, `url` means the embedded server and `policy_path` the project's policy.yaml.
    """

    url: str | None = None
    policy_path: str | None = None

    def engine(self) -> Engine:
        """A pooled engine, shared by every asset in the process."""
        return db.engine_for(self.url)

    def policy(self) -> Policy:
        """The policy, validated against the live database so a typo fails the run, not the purge."""
        try:
            policy = load_policy(Path(self.policy_path) if self.policy_path else Settings.from_env().policy_path)
            with self.engine().connect() as conn:
                check_policy_against_database(policy, conn)
        except PolicyError as exc:
            # dg.Failure puts the message first in the UI instead of under a stack trace.
            raise dg.Failure(description="The policy file is not usable; nothing was changed.\n"
                             + "\n".join(exc.problems), allow_retries=False) from None
        return policy


class ExportFolder(dg.ConfigurableResource):
    """Where files leave the system for someone else (carrier files, access exports), one
    subfolder per purpose. Left empty, `path` means LIFECYCLE_EXPORT_DIR, else .lifecycle/exports.
    """

    path: str | None = None

    def folder(self, purpose: str) -> Path:
        """The subfolder for `purpose` (e.g. "logistics"), not created until something is written."""
        return Path(self.path or Settings.from_env().export_dir) / purpose
