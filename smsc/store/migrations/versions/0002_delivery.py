"""delivery: carriers' ids per part, the outbox, routes, number portability

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("carrier", sa.String(32)))
        batch.add_column(sa.Column("attempts", sa.SmallInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("error", sa.Integer))
    op.create_table(
        "message_parts",
        sa.Column("message_id", _ID, sa.ForeignKey("messages.id"), primary_key=True),
        sa.Column("seq", sa.SmallInteger, primary_key=True),
        sa.Column("carrier", sa.String(32), nullable=False),
        sa.Column("carrier_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(13), nullable=False),
        sa.Column("sent_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("message_parts_carrier_id", "message_parts", ["carrier", "carrier_id"])
    op.create_table(
        "outbox",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("message_id", _ID),
        sa.Column("source_ton", sa.SmallInteger, nullable=False),
        sa.Column("source_npi", sa.SmallInteger, nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("destination", sa.String(20), nullable=False),
        sa.Column("esm_class", sa.SmallInteger, nullable=False),
        sa.Column("data_coding", sa.SmallInteger, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("tlvs", sa.LargeBinary, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.SmallInteger, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("due_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("outbox_queue", "outbox", ["state", "account_id", "due_at"])
    op.create_table(
        "routes",
        sa.Column("prefix", sa.String(15), primary_key=True),
        sa.Column("carrier", sa.String(32), primary_key=True),
        sa.Column("priority", sa.Integer, nullable=False),
    )
    op.create_table(
        "mnp",
        sa.Column("number", sa.String(15), primary_key=True),
        sa.Column("carrier", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    for table in ("mnp", "routes", "outbox", "message_parts"):
        op.drop_table(table)
    with op.batch_alter_table("messages") as batch:
        for column in ("error", "attempts", "carrier"):
            batch.drop_column(column)
