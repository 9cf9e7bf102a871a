"""The addresses accounts send from: short codes (36xxx promotional, 38xxx transactional),
long numbers (kept in E.164) and alphanumeric ids. A shared short code has one row per
account that uses it; a subscriber's reply to it goes to the account that last messaged them
from it."""

from sqlalchemy import Connection, delete, func, insert, select

from .schema import accounts, messages, senders


def add(conn: Connection, account_id: int, address: str) -> bool:
    """Give the account an address (already normalised). False when it had it."""
    if address in of(conn, account_id):
        return False
    conn.execute(insert(senders).values(address=address, account_id=account_id))
    return True


def remove(conn: Connection, account_id: int, address: str) -> bool:
    result = conn.execute(
        delete(senders).where(senders.c.account_id == account_id, senders.c.address == address)
    )
    return result.rowcount > 0


def of(conn: Connection, account_id: int) -> list[str]:
    query = select(senders.c.address).where(senders.c.account_id == account_id)
    return list(conn.execute(query.order_by(senders.c.address)).scalars())


def all_by_account(conn: Connection) -> dict[int, frozenset[str]]:
    found: dict[int, set[str]] = {}
    for account_id, address in conn.execute(select(senders.c.account_id, senders.c.address)):
        found.setdefault(account_id, set()).add(address)
    return {account_id: frozenset(addresses) for account_id, addresses in found.items()}


def accounts_of(conn: Connection, address: str) -> list[int]:
    """The accounts that registered this address."""
    query = select(senders.c.account_id).where(senders.c.address == address)
    return list(conn.execute(query.order_by(senders.c.account_id)).scalars())


def last_sender(conn: Connection, address: str, subscriber: str) -> int | None:
    """The account that last sent to `subscriber` from `address` (whoever registered it):
    who a reply to a shared short code, or to an address nobody registered, is for."""
    owners = accounts_of(conn, address) or list(conn.execute(select(accounts.c.id)).scalars())
    best: tuple[int, int] | None = None  # (newest message id, account)
    for account_id in owners:
        # Through the (account_id, destination) index: one subscriber's rows per account.
        newest = conn.execute(
            select(func.max(messages.c.id)).where(
                messages.c.account_id == account_id,
                messages.c.destination == subscriber,
                messages.c.source == address,
            )
        ).scalar()
        if newest is not None and (best is None or newest > best[0]):
            best = (newest, account_id)
    return None if best is None else best[1]
