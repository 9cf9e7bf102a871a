"""credit: prepaid and postpaid accounts, the ledger, the tariff

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_CHARGES = sa.text("kind IN ('charge', 'refund')")


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("prepaid", sa.Boolean, nullable=False, server_default="0"))
        batch.add_column(sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("low_balance", sa.BigInteger, nullable=False, server_default="0")
        )
        for policy in ("refund_expired", "refund_rejected"):
            batch.add_column(sa.Column(policy, sa.Boolean, nullable=False, server_default="1"))
    op.create_table(
        "ledger",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("message_id", _ID),
        sa.Column("note", sa.String(200), nullable=False, server_default=sa.text("''")),
    )
    op.create_index("ledger_account", "ledger", ["account_id", "at"])
    op.create_index(
        "ledger_message",
        "ledger",
        ["message_id", "kind"],
        unique=True,
        sqlite_where=_CHARGES,
        postgresql_where=_CHARGES,
    )
    op.create_table(
        "tariffs",
        sa.Column("prefix", sa.String(15), primary_key=True),
        sa.Column("price", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tariffs")
    op.drop_index("ledger_message", "ledger")
    op.drop_index("ledger_account", "ledger")
    op.drop_table("ledger")
    with op.batch_alter_table("accounts") as batch:
        for column in ("refund_rejected", "refund_expired", "low_balance", "balance", "prepaid"):
            batch.drop_column(column)
