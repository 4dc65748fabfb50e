"""Dagster resources: one per external system the assets touch.

Secrets (the database URL, the webhook URL, the guard key) reach these only through `dg.EnvVar`
(definitions.py), the one kind of value the UI never displays.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy.engine import Engine

from lifecycle import db
from lifecycle.guard.key import GuardKey, load_key
from lifecycle.guard.reader import reader_engine
from lifecycle.policy import Policy, PolicyError, check_policy_against_database, load_policy
from orchestration import history, tags


class ShopDatabase(dg.ConfigurableResource):
    """The shop's PostgreSQL, and the policy that governs it, read once per run.

    `url` is the database (a secret: set through dg.EnvVar); left empty, the embedded server whose
    data lives in `embedded_data_dir`. When a run starts, the policy file is read and validated
    against the database once, and the run is tagged with its version and hash: every step of the
    run applies that one snapshot, whatever happens to the file meanwhile.
    """

    url: str | None = None
    embedded_data_dir: str | None = None
    policy_path: str

    _policy: Policy | None = PrivateAttr(default=None)
    _unusable: dg.Failure | None = PrivateAttr(default=None)
    _as_of: datetime | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run, instance = context.run, context.instance
        if run is None or instance is None:  # a sensor tick or a direct call: no run to tag
            return
        self._as_of = history.run_created_at(instance, run.run_id)
        try:
            policy = self.policy()
        except dg.Failure as failure:
            # The run goes on to fail at its first step with the whole message, where the UI shows it.
            self._unusable = failure
            instance.add_run_tags(
                run.run_id,
                {
                    **tags.trigger_tags(tags.trigger_of(run.tags)),
                    **tags.problem_tags(failure.description.splitlines()[-1]),
                },
            )
            return
        stamped = run.tags.get(tags.TAG_POLICY_HASH)
        wanted = tags.policy_tags(policy)
        if stamped and stamped != wanted[tags.TAG_POLICY_HASH]:
            raise dg.Failure(
                description=(
                    f"{policy.path.name} changed while this run was going (it started with policy {stamped}, the "
                    f"file now has {wanted[tags.TAG_POLICY_HASH]}); nothing more was done. Launch the run again."
                ),
                allow_retries=False,
            )
        instance.add_run_tags(run.run_id, {**wanted, tags.TAG_TRIGGER: tags.trigger_of(run.tags)})

    def engine(self) -> Engine:
        """A pooled engine, shared by every asset in the process."""
        if self.url:
            return db.engine_for(self.url)
        if not self.embedded_data_dir:
            raise dg.Failure(
                description="ShopDatabase: set url (LIFECYCLE_DATABASE_URL) or embedded_data_dir"
            )
        return db.engine_for(
            db.embedded_url(Path(self.embedded_data_dir)).render_as_string(hide_password=False)
        )

    def policy(self) -> Policy:
        """The run's policy, validated against the live database so a typo fails the run, not the purge."""
        if self._unusable is not None:
            raise self._unusable
        if self._policy is None:
            try:
                policy = load_policy(Path(self.policy_path))
                with self.engine().connect() as conn:
                    check_policy_against_database(policy, conn)
            except PolicyError as exc:
                # dg.Failure puts the message first in the UI instead of under a stack trace.
                raise dg.Failure(
                    description="The policy file is not usable; nothing was changed.\n"
                    + "\n".join(exc.problems),
                    allow_retries=False,
                ) from None
            self._policy = policy
        return self._policy

    def as_of(self) -> datetime:
        """The instant the run was created: every step of one night judges dueness at the same instant."""
        return self._as_of or datetime.now(UTC)


class ExportFolder(dg.ConfigurableResource):
    """Where files leave the system for someone else (carrier files, access exports), one
    subfolder per purpose."""

    path: str

    def folder(self, purpose: str) -> Path:
        """The subfolder for `purpose` (e.g. "logistics"), not created until something is written."""
        return Path(self.path) / purpose


class GuardSecret(dg.ConfigurableResource):
    """The leak guard's HMAC key: `secret` (LIFECYCLE_GUARD_SECRET, through dg.EnvVar) or, left
    empty, a 0600 key file made on first use."""

    secret: str | None = None
    key_file: str
    reader_password: str | None = None  # LIFECYCLE_GUARD_READER_PASSWORD, through dg.EnvVar

    def key(self) -> GuardKey:
        """The key, loaded (or created) now."""
        return load_key(self.secret, Path(self.key_file))

    def reader(self, engine: Engine) -> Engine:
        """The guard's reader login on `engine`'s database (lifecycle.guard.reader)."""
        return reader_engine(engine, self.reader_password)


class AlertWebhook(dg.ConfigurableResource):
    """An optional URL that receives each alert as a JSON POST (with a Slack-style `text` field).

    Left empty (LIFECYCLE_WEBHOOK_URL unset), alerts are only recorded in lifecycle.alerts.
    The URL may hold a token, so it never appears in a log line or a status.
    """

    url: str | None = None
    timeout_seconds: float = 5.0

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def post(self, payload: dict) -> tuple[bool, str]:
        """POSTs `payload`; returns (delivered, status) such as (True, 'http 200'); never raises."""
        request = urllib.request.Request(
            self.url,
            data=json.dumps(payload).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "lifecycle-alerts"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                return 200 <= response.status < 300, f"http {response.status}"
        except urllib.error.HTTPError as exc:
            return False, f"http {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return False, f"error: {type(reason).__name__}"
