"""How deep the queue and the outbox are, for the metrics: counted in the background on the
read pool, never per scrape.

Each count reads only the `messages_queue` / `outbox_queue` index entries of the states it
names (a covering index range, no table rows), and stops at `CAP` rows, so that one count
stays bounded whatever the history of settled messages.
"""

from sqlalchemy import Connection, text

CAP = 10_000_000  # a count stops here: beyond it the number is CAP
QUEUE_STATES = ("waiting", "scheduled", "in_flight")

_COUNT = "SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {where} LIMIT :cap) AS q"
_QUERIES = {
    "waiting": _COUNT.format(table="messages", where="state = 'ACCEPTED' AND due_at <= :now"),
    "scheduled": _COUNT.format(table="messages", where="state = 'ACCEPTED' AND due_at > :now"),
    "in_flight": _COUNT.format(table="messages", where="state IN ('SENDING', 'ENROUTE')"),
    "outbox": _COUNT.format(table="outbox", where="state IN ('PENDING', 'SENDING')"),
}
_STATEMENTS = {name: text(sql) for name, sql in _QUERIES.items()}


def depths(conn: Connection, now: float) -> dict[str, int]:
    """{waiting, scheduled, in_flight, outbox} → rows, each at most CAP."""
    return {
        name: conn.execute(statement, {"now": now, "cap": CAP}).scalar_one()
        for name, statement in _STATEMENTS.items()
    }


def ping(conn: Connection) -> int:
    """The trivial query /healthz asks."""
    return conn.execute(text("SELECT 1")).scalar_one()
