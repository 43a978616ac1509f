"""Contacts have a link version: `links_version`.

Preference links carry the version of the contact's links they were made for. A
link of an older version (the contact's address changed, or an operator revoked the
links with `carecast contacts revoke-links`) still unsubscribes, but may no longer
turn anything on.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("contacts", sa.Column("links_version", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("contacts", "links_version")
