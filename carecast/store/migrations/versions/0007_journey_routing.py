"""Journeys keep their word: routing recorded at enrolment, a signal outbox, campaign controls, bundles.

- enrolments: `key_field` and `listens_to` from the version the journey enrolled with
  (filled here from each enrolment's own stored version), the trigger event, and when
  the journey was started and found ended;
- journey_signals: the outbox the relay starts and signals journeys from;
- campaign_controls: an operator's pause or stop of a campaign;
- campaign_versions: the templates and email identity of each version's bundle
  (versions deployed before have none and keep rendering from the worker's folder);
- house_rules: policy.yaml as deployed, which workers apply (before: each worker's own file).

Revision ID: 0007
Revises: 0006
"""

import hashlib
import json
import re

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from carecast.store.types import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOCUMENT = sa.JSON().with_variant(JSONB(), "postgresql")


def _entry_key(value: str) -> str:
    """The form routing compares entry keys in, as the code of this revision writes it: as given when
    short and safe, hashed otherwise (carecast.intake.record.entry_key_of)."""
    if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value):
        return value
    return "~" + hashlib.sha256(value.encode()).hexdigest()[:32]


def _listens_to(spec: dict) -> list[str]:
    """What a journey of this stored spec hears, as the code of this revision reads a campaign."""
    events = set(spec.get("exit_on") or [])
    if spec.get("goal"):
        events.add(spec["goal"]["event"])
    if (spec.get("trigger") or {}).get("stage"):
        events.add("stage_left")
    for step in spec.get("steps") or []:
        if step.get("wait_for"):
            events.add(step["wait_for"]["event"])
    return sorted(events)


def upgrade() -> None:
    with op.batch_alter_table("enrolments") as batch:
        batch.add_column(sa.Column("key_field", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("listens_to", JSON_DOCUMENT, nullable=True))
        batch.add_column(sa.Column("trigger_event_id", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("started_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("ended_at", UtcDateTime(), nullable=True))
        batch.create_index("ix_enrolments_contact_ended", ["contact_id", "ended_at"], unique=False)

    connection = op.get_bind()
    versions = {
        (campaign_id, version): spec if isinstance(spec, dict) else json.loads(spec)
        for campaign_id, version, spec in connection.execute(
            sa.text("SELECT campaign_id, version, spec FROM campaign_versions")
        )
    }
    enrolments = sa.table(
        "enrolments",
        sa.column("id", BIG_ID),
        sa.column("campaign_id", sa.String),
        sa.column("campaign_version", sa.Integer),
        sa.column("enrolled_at", UtcDateTime()),
        sa.column("entry_key", sa.String),
        sa.column("key_field", sa.String),
        sa.column("listens_to", JSON_DOCUMENT),
        sa.column("started_at", UtcDateTime()),
    )
    rows = connection.execute(
        sa.select(
            enrolments.c.id,
            enrolments.c.campaign_id,
            enrolments.c.campaign_version,
            enrolments.c.enrolled_at,
            enrolments.c.entry_key,
        )
    ).all()
    for row_id, campaign_id, version, enrolled_at, entry_key in rows:
        spec = versions.get((campaign_id, version), {})
        connection.execute(
            enrolments.update()
            .where(enrolments.c.id == row_id)
            .values(
                key_field=(spec.get("entry") or {}).get("key"),
                listens_to=_listens_to(spec),
                started_at=enrolled_at,  # journeys were started right after their enrolment
                entry_key=_entry_key(entry_key),  # the workflow id keeps the key it was started with
            )
        )
    with op.batch_alter_table("enrolments") as batch:
        batch.alter_column("listens_to", existing_type=JSON_DOCUMENT, nullable=False)

    op.create_table(
        "journey_signals",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("enrolment_id", BIG_ID, nullable=False),
        sa.Column("workflow_id", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("signal_key", sa.String(length=200), nullable=False),
        sa.Column("event_name", sa.String(length=128), nullable=True),
        sa.Column("stage", sa.String(length=64), nullable=True),
        sa.Column("occurred_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["enrolment_id"],
            ["enrolments.id"],
            name=op.f("fk_journey_signals_enrolment_id_enrolments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_signals")),
        sa.UniqueConstraint("workflow_id", "signal_key", name="uq_journey_signals_workflow_signal"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_journey_signals_due", "journey_signals", ["next_attempt_at"], unique=False)
    op.create_index(op.f("ix_journey_signals_enrolment_id"), "journey_signals", ["enrolment_id"], unique=False)

    op.create_table(
        "campaign_controls",
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("changed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaign_controls")),
    )

    with op.batch_alter_table("campaign_versions") as batch:
        batch.add_column(sa.Column("templates", JSON_DOCUMENT, nullable=True))
        batch.add_column(sa.Column("identity", JSON_DOCUMENT, nullable=True))

    op.create_table(
        "house_rules",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("document", JSON_DOCUMENT, nullable=False),
        sa.Column("deployed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_house_rules")),
    )


def downgrade() -> None:
    op.drop_table("house_rules")
    with op.batch_alter_table("campaign_versions") as batch:
        batch.drop_column("identity")
        batch.drop_column("templates")
    op.drop_table("campaign_controls")
    op.drop_index(op.f("ix_journey_signals_enrolment_id"), table_name="journey_signals")
    op.drop_index("ix_journey_signals_due", table_name="journey_signals")
    op.drop_table("journey_signals")
    with op.batch_alter_table("enrolments") as batch:
        batch.drop_index("ix_enrolments_contact_ended")
        batch.drop_column("ended_at")
        batch.drop_column("started_at")
        batch.drop_column("trigger_event_id")
        batch.drop_column("listens_to")
        batch.drop_column("key_field")
