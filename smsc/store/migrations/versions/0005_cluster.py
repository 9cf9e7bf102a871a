"""cluster: nodes and their heartbeats, leased slots of shared limits, who claimed a row

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BLOCK = 1024  # message ids a node takes from the sequence at a time (schema.ID_BLOCK)


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
    )
    op.create_table(
        "leases",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("slot", sa.Integer, primary_key=True),
        sa.Column("node_id", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("leases_node", "leases", ["node_id"])
    for table in ("messages", "outbox"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("node_id", sa.Integer))
    # What the stopped switch left in flight belongs to no node: queued again now, as the
    # switch before this revision did at its start.
    op.execute("UPDATE messages SET state = 'ACCEPTED' WHERE state = 'SENDING'")
    op.execute("UPDATE outbox SET state = 'PENDING' WHERE state = 'SENDING'")
    if op.get_bind().dialect.name == "postgresql":
        # Blocks of ids for the nodes' writers, after the ids already given.
        op.execute(f"CREATE SEQUENCE message_ids INCREMENT BY {BLOCK}")
        op.execute("SELECT setval('message_ids', COALESCE(MAX(id), 0) + 1, false) FROM messages")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE message_ids")
    for table in ("outbox", "messages"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("node_id")
    op.drop_index("leases_node", "leases")
    op.drop_table("leases")
    op.drop_table("nodes")
