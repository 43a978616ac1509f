"""Rows to count from: `delivery_events`, and how and until when each journey entry counts.

- delivery_events: what happened to a message after its step (provider news, opens, clicks,
  unsubscribes, complaints, replies, deferrals), filled here from the deliveries' histories;
- enrolments.goal_by: the end of the entry's goal window (filled from each entry's own version);
- enrolments.ended_by: how the journey ended (unknown for journeys ended before this revision);
- guardrail_breaches: a version's guardrail rate found over its ceiling, and what was done.

Revision ID: 0011
Revises: 0010
"""

import json
import re
from datetime import datetime, timedelta

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from carecast.store.types import UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOCUMENT = sa.JSON().with_variant(JSONB(), "postgresql")
BATCH = 1000

# A history entry's `event` (SendGrid's event, Twilio's status) → the kind of row it is, as this revision counts.
KINDS = {
    "delivered": "delivered", "bounce": "bounced", "dropped": "dropped", "open": "opened", "click": "clicked",
    "unsubscribe": "unsubscribed", "group_unsubscribe": "unsubscribed", "spamreport": "complained",
    "read": "delivered", "completed": "delivered", "undelivered": "undelivered", "failed": "undelivered",
    "canceled": "undelivered", "busy": "not_answered", "no-answer": "not_answered",
}  # fmt: skip
UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def _duration(text: str) -> timedelta:
    """A stored goal window (`7d`, `2d3h`), as this revision's campaigns wrote it."""
    return timedelta(**{UNITS[unit]: int(n) for n, unit in re.findall(r"(\d+)([wdhms])", str(text))})


def upgrade() -> None:
    with op.batch_alter_table("enrolments") as batch:
        batch.add_column(sa.Column("goal_by", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("ended_by", sa.String(length=160), nullable=True))
        batch.create_index("ix_enrolments_campaign_version", ["campaign_id", "campaign_version"], unique=False)
    op.create_table(
        "delivery_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("delivery_id", BIG_ID, nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("campaign_version", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("first", sa.Boolean(), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_events")),
    )
    op.create_index(op.f("ix_delivery_events_delivery_id"), "delivery_events", ["delivery_id"], unique=False)
    op.create_index(
        "ix_delivery_events_campaign_kind", "delivery_events", ["campaign_id", "campaign_version", "kind"], unique=False
    )
    op.create_table(
        "guardrail_breaches",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("campaign_version", sa.Integer(), nullable=False),
        sa.Column("kpi", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("ceiling", sa.Float(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("trials", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("found_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guardrail_breaches")),
        sa.UniqueConstraint(
            "campaign_id", "campaign_version", "kpi", name="uq_guardrail_breaches_campaign_version_kpi"
        ),
    )
    connection = op.get_bind()
    _fill_goal_windows(connection)
    _fill_delivery_events(connection)


def _fill_goal_windows(connection) -> None:
    enrolments = sa.table("enrolments", sa.column("id", BIG_ID), sa.column("campaign_id", sa.String),
                          sa.column("campaign_version", sa.Integer), sa.column("enrolled_at", UtcDateTime()),
                          sa.column("goal_by", UtcDateTime()))  # fmt: skip
    for campaign_id, version, spec in connection.execute(
        sa.text("SELECT campaign_id, version, spec FROM campaign_versions")
    ):
        goal = (spec if isinstance(spec, dict) else json.loads(spec)).get("goal")
        if not goal:
            continue
        within = _duration(goal["within"])
        rows = connection.execute(
            sa.select(enrolments.c.id, enrolments.c.enrolled_at).where(
                enrolments.c.campaign_id == campaign_id, enrolments.c.campaign_version == version
            )
        ).all()
        update = (
            enrolments.update().where(enrolments.c.id == sa.bindparam("row_id")).values(goal_by=sa.bindparam("until"))
        )
        for start in range(0, len(rows), BATCH):
            connection.execute(update, [{"row_id": i, "until": at + within} for i, at in rows[start : start + BATCH]])


def _fill_delivery_events(connection) -> None:
    deliveries = sa.table("deliveries", sa.column("id", BIG_ID), sa.column("campaign_id", sa.String),
                          sa.column("campaign_version", sa.Integer), sa.column("step_id", sa.String),
                          sa.column("channel", sa.String), sa.column("status_history", JSON_DOCUMENT))  # fmt: skip
    events = sa.table("delivery_events", *(sa.column(name) for name in (
        "delivery_id", "campaign_id", "campaign_version", "step_id", "channel", "kind", "reason", "url", "first"
    )), sa.column("occurred_at", UtcDateTime()))  # fmt: skip
    last = 0
    while page := connection.execute(
        sa.select(deliveries).where(deliveries.c.id > last).order_by(deliveries.c.id).limit(BATCH)
    ).all():
        last = page[-1].id
        rows = [row for delivery in page for row in _events_of(delivery)]
        if rows:
            connection.execute(events.insert(), rows)


def _events_of(delivery) -> list[dict]:
    where = dict(delivery_id=delivery.id, campaign_id=delivery.campaign_id, campaign_version=delivery.campaign_version,
                 step_id=delivery.step_id, channel=delivery.channel)  # fmt: skip
    history = delivery.status_history
    rows, seen = [], set()
    for entry in history if isinstance(history, list) else json.loads(history or "[]"):
        kind = KINDS.get(entry.get("event", "")) or ("deferred" if entry.get("status") == "deferred" else None)
        if kind is not None and "at" in entry:
            reason = entry.get("reason") if kind == "deferred" else None
            rows.append(where | dict(kind=kind, reason=reason, url=entry.get("url"), first=(kind, reason) not in seen,
                                     occurred_at=datetime.fromisoformat(entry["at"])))  # fmt: skip
            seen.add((kind, reason))
    return rows


def downgrade() -> None:
    op.drop_table("guardrail_breaches")
    op.drop_index("ix_delivery_events_campaign_kind", table_name="delivery_events")
    op.drop_index(op.f("ix_delivery_events_delivery_id"), table_name="delivery_events")
    op.drop_table("delivery_events")
    with op.batch_alter_table("enrolments") as batch:
        batch.drop_index("ix_enrolments_campaign_version")
        batch.drop_column("ended_by")
        batch.drop_column("goal_by")
