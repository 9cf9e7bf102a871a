"""accounts and messages

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("system_id", sa.String(15), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("max_binds", sa.Integer, nullable=False),
        sa.Column("tps", sa.Integer, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "messages",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("service_type", sa.String(5), nullable=False),
        sa.Column("source_ton", sa.SmallInteger, nullable=False),
        sa.Column("source_npi", sa.SmallInteger, nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("destination", sa.String(15), nullable=False),
        sa.Column("esm_class", sa.SmallInteger, nullable=False),
        sa.Column("protocol_id", sa.SmallInteger, nullable=False),
        sa.Column("priority", sa.SmallInteger, nullable=False),
        sa.Column("registered_delivery", sa.SmallInteger, nullable=False),
        sa.Column("data_coding", sa.SmallInteger, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("tlvs", sa.LargeBinary, nullable=False),
        sa.Column("submitted_at", sa.Float, nullable=False),
        sa.Column("due_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("state", sa.String(13), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("multi_id", _ID),
    )
    op.create_index("messages_queue", "messages", ["state", "due_at"])
    op.create_index("messages_account_destination", "messages", ["account_id", "destination"])
    # Partial: most messages are not from a submit_multi, and need not pay for this index.
    only_multi = sa.text("multi_id IS NOT NULL")
    op.create_index(
        "messages_multi",
        "messages",
        ["multi_id"],
        sqlite_where=only_multi,
        postgresql_where=only_multi,
    )


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("accounts")
