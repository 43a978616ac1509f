"""Initial schema: contacts, preferences, consent, suppressions, events, deliveries, campaign versions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from carecast.store.types import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "campaign_versions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("spec", JSON_DOC, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("deployed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_versions")),
        sa.UniqueConstraint("campaign_id", "content_hash", name="uq_campaign_versions_campaign_hash"),
        sa.UniqueConstraint("campaign_id", "version", name="uq_campaign_versions_campaign_version"),
    )
    op.create_index(op.f("ix_campaign_versions_campaign_id"), "campaign_versions", ["campaign_id"], unique=False)
    op.create_table(
        "contacts",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=16), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("locale", sa.String(length=35), nullable=True),
        sa.Column("lifecycle_stage", sa.String(length=64), nullable=True),
        sa.Column("care_agent", sa.String(length=128), nullable=True),
        sa.Column("attributes", JSON_DOC, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
    )
    op.create_index(op.f("ix_contacts_lifecycle_stage"), "contacts", ["lifecycle_stage"], unique=False)
    op.create_table(
        "deliveries",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=400), nullable=False),
        sa.Column("workflow_id", sa.String(length=300), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("campaign_version", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("template", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("provider_message_id", sa.String(length=128), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=True),
        sa.Column("status_history", JSON_DOC, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_deliveries_idempotency_key")),
    )
    op.create_index("ix_deliveries_campaign_status", "deliveries", ["campaign_id", "status"], unique=False)
    op.create_index("ix_deliveries_contact_created", "deliveries", ["contact_id", "created_at"], unique=False)
    op.create_index(op.f("ix_deliveries_provider_message_id"), "deliveries", ["provider_message_id"], unique=False)
    op.create_table(
        "events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("contact_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("data", JSON_DOC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_events_event_id")),
    )
    op.create_index("ix_events_contact_name", "events", ["contact_id", "name"], unique=False)
    op.create_table(
        "suppressions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("channel", "address", name="uq_suppressions_channel_address"),
    )
    op.create_table(
        "consent_records",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("contact_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("topic", sa.String(length=64), nullable=True),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("wording", sa.Text(), nullable=True),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_consent_records_contact_id_contacts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_records")),
    )
    op.create_index(op.f("ix_consent_records_contact_id"), "consent_records", ["contact_id"], unique=False)
    op.create_table(
        "preferences",
        sa.Column("contact_id", sa.String(length=128), nullable=False),
        sa.Column("email_consent", sa.Boolean(), nullable=False),
        sa.Column("sms_consent", sa.Boolean(), nullable=False),
        sa.Column("voice_consent", sa.Boolean(), nullable=False),
        sa.Column("preferred_channels", JSON_DOC, nullable=False),
        sa.Column("topics", JSON_DOC, nullable=False),
        sa.Column("quiet_hours_start", sa.String(length=5), nullable=True),
        sa.Column("quiet_hours_end", sa.String(length=5), nullable=True),
        sa.Column("send_windows", JSON_DOC, nullable=False),
        sa.Column("frequency_limit", JSON_DOC, nullable=True),
        sa.Column("paused_until", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_preferences_contact_id_contacts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("contact_id", name=op.f("pk_preferences")),
    )


def downgrade() -> None:
    op.drop_table("preferences")
    op.drop_index(op.f("ix_consent_records_contact_id"), table_name="consent_records")
    op.drop_table("consent_records")
    op.drop_table("suppressions")
    op.drop_index("ix_events_contact_name", table_name="events")
    op.drop_table("events")
    op.drop_index(op.f("ix_deliveries_provider_message_id"), table_name="deliveries")
    op.drop_index("ix_deliveries_contact_created", table_name="deliveries")
    op.drop_index("ix_deliveries_campaign_status", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index(op.f("ix_contacts_lifecycle_stage"), table_name="contacts")
    op.drop_table("contacts")
    op.drop_index(op.f("ix_campaign_versions_campaign_id"), table_name="campaign_versions")
    op.drop_table("campaign_versions")
