"""scheduling: accounts' validity bounds and sending hours; a queue index per account

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("marketing", sa.Boolean, nullable=False, server_default="0"))
        batch.add_column(
            sa.Column(
                "sending_hours",
                sa.String(200),
                nullable=False,
                server_default="mon-sat 08:00-21:30",  # the operators' charter
            )
        )
        batch.add_column(
            sa.Column("timezone", sa.String(64), nullable=False, server_default="Europe/Paris")
        )
        batch.add_column(sa.Column("holidays", sa.String(8), nullable=False, server_default="fr"))
        batch.add_column(
            sa.Column("default_validity", sa.Integer, nullable=False, server_default="172800")
        )
        batch.add_column(
            sa.Column("max_validity", sa.Integer, nullable=False, server_default="604800")
        )
    # The dispatcher claims each account's due messages in turn (fairness): by account first.
    op.drop_index("messages_queue", "messages")
    op.create_index("messages_queue", "messages", ["state", "account_id", "due_at"])


def downgrade() -> None:
    op.drop_index("messages_queue", "messages")
    op.create_index("messages_queue", "messages", ["state", "due_at"])
    with op.batch_alter_table("accounts") as batch:
        for column in (
            "max_validity", "default_validity", "holidays", "timezone", "sending_hours",
            "marketing",
        ):  # fmt: skip
            batch.drop_column(column)
