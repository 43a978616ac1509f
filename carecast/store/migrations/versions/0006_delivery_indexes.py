"""Delivery indexes for the queries carecast makes.

A broadcast's retry of its deferred messages looks them up by run and status,
which no index served (it read every delivery of every campaign). Two indexes
served no query at all and cost an entry on every insert and every record
update: (contact_id, created_at), which (contact_id, sent_at) makes redundant,
and provider_message_id (callbacks find their delivery by its id).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_workflow_status", "deliveries", ["workflow_id", "status"], unique=False)
    op.drop_index("ix_deliveries_contact_created", table_name="deliveries")
    op.drop_index("ix_deliveries_provider_message_id", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_provider_message_id", "deliveries", ["provider_message_id"], unique=False)
    op.create_index("ix_deliveries_contact_created", "deliveries", ["contact_id", "created_at"], unique=False)
    op.drop_index("ix_deliveries_workflow_status", table_name="deliveries")
