"""Feedback from providers: applied callbacks, and "no marketing at all".

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from carecast.store.types import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "provider_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("delivery_id", BigId, nullable=True),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_events")),
        sa.UniqueConstraint("provider", "event_id", name="uq_provider_events_provider_event"),
    )
    with op.batch_alter_table("preferences") as batch:
        batch.add_column(sa.Column("marketing_consent", sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("preferences") as batch:
        batch.drop_column("marketing_consent")
    op.drop_table("provider_events")
