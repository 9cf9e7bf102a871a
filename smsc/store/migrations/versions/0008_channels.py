"""channels: receipts by HTTP callback or email, API tokens, the email senders of accounts

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("callback", sa.String(500)))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("url", sa.String(500)))
    op.create_table(
        "api_tokens",
        sa.Column("token_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("label", sa.String(64), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "mail_senders",
        sa.Column("address", sa.String(254), primary_key=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("reports", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mail_senders")
    op.drop_table("api_tokens")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("url")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("callback")
