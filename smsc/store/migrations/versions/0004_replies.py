"""replies: accounts' senders and identity, the opt-out list, automatic replies, MO parts

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_IDENTITY = ("company", "contact", "website")


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        for column in _IDENTITY:
            batch.add_column(
                sa.Column(column, sa.String(160), nullable=False, server_default=sa.text("''"))
            )
        batch.add_column(
            sa.Column("mobile_senders", sa.Boolean, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("stop_mention", sa.String(8), nullable=False, server_default="append")
        )
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("origin", sa.SmallInteger, nullable=False, server_default="0"))
    op.create_table(
        "senders",
        sa.Column("address", sa.String(20), primary_key=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), primary_key=True),
    )
    op.create_index("senders_account", "senders", ["account_id"])
    op.create_table(
        "optouts",
        sa.Column("number_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column("scope", sa.Integer, primary_key=True),
        sa.Column("origin", sa.String(8), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("optouts_created", "optouts", ["created_at"])
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
    )
    op.create_table(
        "inbox_parts",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("carrier", sa.String(32), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("destination", sa.String(20), nullable=False),
        sa.Column("ref", sa.Integer, nullable=False),
        sa.Column("total", sa.SmallInteger, nullable=False),
        sa.Column("seq", sa.SmallInteger, nullable=False),
        sa.Column("data_coding", sa.SmallInteger, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
    )
    op.create_index("inbox_parts_message", "inbox_parts", ["source", "destination", "ref"])


def downgrade() -> None:
    op.drop_table("inbox_parts")
    op.drop_table("settings")
    op.drop_table("optouts")
    op.drop_table("senders")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("origin")
    with op.batch_alter_table("accounts") as batch:
        for column in ("stop_mention", "mobile_senders", *_IDENTITY):
            batch.drop_column(column)
