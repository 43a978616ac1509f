"""Enrolments: which contact entered which journey, when, and whether as holdout.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from carecast.store.types import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "enrolments",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("campaign_version", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.String(length=128), nullable=False),
        sa.Column("entry_key", sa.String(length=200), nullable=False),
        sa.Column("workflow_id", sa.String(length=300), nullable=False),
        sa.Column("holdout", sa.Boolean(), nullable=False),
        sa.Column("enrolled_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrolments")),
        sa.UniqueConstraint("campaign_id", "contact_id", "entry_key", name="uq_enrolments_campaign_contact_entry"),
    )


def downgrade() -> None:
    op.drop_table("enrolments")
