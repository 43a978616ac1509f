"""Deliveries remember when the policy let them go out, so caps count from that moment.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from carecast.store.types import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("sent_at", UtcDateTime(), nullable=True))
    op.create_index("ix_deliveries_contact_sent", "deliveries", ["contact_id", "sent_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_deliveries_contact_sent", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("sent_at")
