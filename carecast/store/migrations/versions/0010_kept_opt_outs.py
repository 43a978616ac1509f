"""Opt-outs kept after a contact is forgotten: `kept_opt_outs`.

`carecast contacts forget` erases a contact but keeps each opt-out still in force, and
each suppression of an address no other contact has, under a keyed hash of the
address, so a contact created later with that address starts opted out.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

from carecast.store.types import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "kept_opt_outs",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("address_hash", sa.String(length=80), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("topic", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("wording", sa.Text(), nullable=True),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.Column("kept_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kept_opt_outs")),
    )
    op.create_index(op.f("ix_kept_opt_outs_address_hash"), "kept_opt_outs", ["address_hash"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_kept_opt_outs_address_hash"), table_name="kept_opt_outs")
    op.drop_table("kept_opt_outs")
