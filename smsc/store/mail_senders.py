"""The email addresses that may send SMS for an account (email to SMS, smsc.channels.mail).

Addresses are kept and compared in lower case. `reports`: the results (what was accepted or
refused, then each receipt) are mailed back to the address.
"""

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select

from .accounts import Account, AccountError, by_id
from .schema import accounts, mail_senders

_LONGEST = 254  # RFC 5321's path limit


@dataclass(frozen=True, slots=True)
class MailSender:
    address: str
    system_id: str
    reports: bool
    created_at: float


def normalise(address: str) -> str:
    """An address as it is kept: lower case, without blanks or angle brackets; AccountError
    when it is not `local@domain`."""
    address = address.strip().strip("<>").lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or len(address) > _LONGEST or " " in address:
        raise AccountError(f"{address!r} is not an email address (name@example.com)")
    return address


def add(conn: Connection, account_id: int, address: str, reports: bool, now: float) -> None:
    """Register an address (normalised) for an account; AccountError when another account has
    it. Registering it again for the same account changes its `reports`."""
    found = conn.execute(
        select(mail_senders.c.account_id).where(mail_senders.c.address == address)
    ).scalar()
    if found is not None and found != account_id:
        raise AccountError(f"{address} sends for another account already")
    conn.execute(delete(mail_senders).where(mail_senders.c.address == address))
    conn.execute(
        insert(mail_senders).values(
            address=address, account_id=account_id, reports=reports, created_at=now
        )
    )


def remove(conn: Connection, address: str) -> bool:
    result = conn.execute(delete(mail_senders).where(mail_senders.c.address == address))
    return result.rowcount > 0


def listing(conn: Connection, account_id: int | None = None) -> list[MailSender]:
    """The registered addresses (of one account, or of all), by account then address."""
    query = select(
        mail_senders.c.address, accounts.c.system_id, mail_senders.c.reports,
        mail_senders.c.created_at,
    ).join(accounts, accounts.c.id == mail_senders.c.account_id)  # fmt: skip
    if account_id is not None:
        query = query.where(mail_senders.c.account_id == account_id)
    query = query.order_by(accounts.c.system_id, mail_senders.c.address)
    return [MailSender(*row) for row in conn.execute(query)]


def sender(conn: Connection, address: str) -> tuple[Account, bool] | None:
    """The account an address (normalised) sends for, and whether it wants reports."""
    row = conn.execute(
        select(mail_senders.c.account_id, mail_senders.c.reports).where(
            mail_senders.c.address == address
        )
    ).first()
    return None if row is None else (by_id(conn, row.account_id), bool(row.reports))
