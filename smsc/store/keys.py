"""Secret keys the switch makes for itself, once, and keeps in `settings`: every node of a
cluster and every restart then use the same one (to check what another node signed)."""

import secrets

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from .schema import settings


def secret(conn: Connection, name: str) -> bytes:
    """The key kept under `name`, made (32 random octets) on first use. Two nodes starting at
    once both offer one; the first stored is the one both use."""
    query = select(settings.c.value).where(settings.c.key == name)
    value = conn.execute(query).scalar()
    if value is None:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        offer = insert(settings).values(key=name, value=secrets.token_hex(32))
        conn.execute(offer.on_conflict_do_nothing(index_elements=["key"]))
        value = conn.execute(query).scalar()
    return bytes.fromhex(value)
