"""Deliveries know when they are next tried: `retry_at`.

Set while a message waits to be tried again — deferred by the policy (until the
time it may go), refused for now by a provider (429, 5xx, a refused key: after a
backoff), or left uncertain and due its one resend — and, on a `sending` row, the
end of its claim's lease; cleared once it is settled. A broadcast's retry pass reads its run's due messages by
(workflow_id, retry_at), a page at a time; that index replaces
(workflow_id, status), which only that pass used.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from carecast.store.types import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("retry_at", UtcDateTime(), nullable=True))
    # Rows deferred before this revision are due at once: the retry pass asks the policy again, which
    # defers them anew if their time has not come.
    deferred = sa.table("deliveries", sa.column("status"), sa.column("retry_at", UtcDateTime()))
    op.execute(deferred.update().where(deferred.c.status == "deferred").values(retry_at=sa.func.current_timestamp()))
    op.create_index("ix_deliveries_workflow_retry", "deliveries", ["workflow_id", "retry_at"], unique=False)
    op.drop_index("ix_deliveries_workflow_status", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_workflow_status", "deliveries", ["workflow_id", "status"], unique=False)
    op.drop_index("ix_deliveries_workflow_retry", table_name="deliveries")
    op.drop_column("deliveries", "retry_at")
