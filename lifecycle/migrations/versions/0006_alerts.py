"""Alerts: a failed or stale nightly run, or orders left past their window, told to a person.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE lifecycle.alerts (
            alert_id        bigserial PRIMARY KEY,
            raised_at       timestamptz NOT NULL DEFAULT now(),
            kind            text NOT NULL,
            dedupe_key      text NOT NULL,
            run_id          text,
            message         text NOT NULL,
            delivered_at    timestamptz,
            webhook_status  text,
            attempts        int NOT NULL DEFAULT 0,
            UNIQUE (kind, dedupe_key)
        );
        CREATE INDEX alerts_undelivered_idx ON lifecycle.alerts (raised_at) WHERE delivered_at IS NULL;
        COMMENT ON TABLE lifecycle.alerts IS
            'Alerts raised by the run-failure and freshness sensors: counts and run ids, never a personal value.';
        COMMENT ON COLUMN lifecycle.alerts.dedupe_key IS
            'One alert per key: a failed run once, a persisting condition once a day.';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE lifecycle.alerts")
