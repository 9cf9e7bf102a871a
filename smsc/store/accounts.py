"""Accounts: the clients that bind. Passwords are kept as scrypt hashes, never in clear."""

import hashlib
import hmac
import os
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update

from . import schema, senders
from .schema import CHARTER_HOURS, accounts, api_tokens, ledger, mail_senders, messages, outbox

# scrypt at n=2**14, r=8: ~60 ms and 16 MiB a check here, so guessing is slow; the server keeps
# a cache of recent successful binds so that reconnect storms do not pay it again.
_N, _R, _P = 2**14, 8, 1

DEFAULT_MAX_BINDS = 10
DEFAULT_VALIDITY = 48 * 3600  # seconds a message is tried when its client gives no validity
MAX_VALIDITY = 7 * 24 * 3600  # and at most
# What `change` may set besides the password, with the check each value must pass.
_SETTABLE = {
    "max_binds": lambda v: v >= 1 or "--max-binds must be at least 1",
    "tps": lambda v: v >= 0 or "--tps must be 0 (no cap) or more",
    "enabled": lambda v: True,
    "marketing": lambda v: True,
    "sending_hours": lambda v: True,  # parsed by the caller (smsc.hours), kept as its text
    "timezone": lambda v: True,
    "holidays": lambda v: v in ("fr", "none") or "--holidays must be fr or none",
    "default_validity": lambda v: v > 0 or "--validity must be more than 0 seconds",
    "max_validity": lambda v: v > 0 or "--max-validity must be more than 0 seconds",
    "company": lambda v: len(v) <= 160 or "--company: at most 160 characters",
    "contact": lambda v: len(v) <= 160 or "--contact: at most 160 characters",
    "website": lambda v: len(v) <= 160 or "--website: at most 160 characters",
    "mobile_senders": lambda v: True,
    "stop_mention": lambda v: v in STOP_MENTIONS or "--stop-mention must be append or refuse",
    "prepaid": lambda v: True,
    "low_balance": lambda v: v >= 0 or "--low-balance must be 0 (no alert) or more",
    "refund_expired": lambda v: True,
    "refund_rejected": lambda v: True,
    "networks": lambda v: len(v) <= 2000 or "--allow-network: too many networks",
    "reply_url": lambda v: (
        v == ""
        or (v.startswith(("http://", "https://")) and len(v) <= 500 and v.isprintable())
        or '--reply-url: an http:// or https:// URL of at most 500 characters ("" removes it)'
    ),
}
STOP_MENTIONS = ("append", "refuse")


class AccountError(Exception):
    """A CLI-level problem with an account (exists already, unknown, bad value)."""


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    system_id: str
    password_hash: str
    max_binds: int
    tps: int
    enabled: bool
    created_at: float
    marketing: bool = False
    sending_hours: str = CHARTER_HOURS
    timezone: str = "Europe/Paris"
    holidays: str = "fr"
    default_validity: int = DEFAULT_VALIDITY
    max_validity: int = MAX_VALIDITY
    company: str = ""
    contact: str = ""
    website: str = ""
    mobile_senders: bool = False
    stop_mention: str = "append"
    prepaid: bool = False
    balance: int = 0  # thousandths of a credit (smsc.store.credit)
    low_balance: int = 0
    refund_expired: bool = True
    refund_rejected: bool = True
    networks: str = ""  # CIDRs it may bind from, separated by spaces; empty: anywhere
    reply_url: str = ""  # subscribers' replies POSTed there; empty: to its SMPP binds
    senders: frozenset[str] = frozenset()  # empty: any valid sender (see the README)


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
        )
        expected = bytes.fromhex(digest)
    except (ValueError, TypeError, OverflowError):
        # A damaged hash (a cost too large for a C int, a non-hex or non-ASCII digest) is
        # a wrong password, not an exception in the bind path.
        return False
    return hmac.compare_digest(got, expected)


def _check(system_id: str, password: str | None, max_binds: int | None, tps: int | None):
    if not system_id or len(system_id) > 15 or not system_id.isprintable():
        raise AccountError("system_id must be 1 to 15 printable characters (SMPP allows 15)")
    if password is not None and not 1 <= len(password) <= 8:
        raise AccountError("password must be 1 to 8 characters (SMPP allows 8)")
    if max_binds is not None and max_binds < 1:
        raise AccountError("--max-binds must be at least 1")
    if tps is not None and tps < 0:
        raise AccountError("--tps must be 0 (no cap) or more")


def add(
    conn: Connection,
    system_id: str,
    password: str,
    now: float,
    max_binds: int = DEFAULT_MAX_BINDS,
    tps: int = 0,
) -> Account:
    _check(system_id, password, max_binds, tps)
    if get(conn, system_id) is not None:
        raise AccountError(f"account {system_id} exists already")
    conn.execute(
        insert(accounts).values(
            system_id=system_id,
            password_hash=hash_password(password),
            max_binds=max_binds,
            tps=tps,
            enabled=True,
            created_at=now,
        )
    )
    return get(conn, system_id)


def get(conn: Connection, system_id: str) -> Account | None:
    row = conn.execute(select(accounts).where(accounts.c.system_id == system_id)).first()
    return _account(conn, row) if row else None


def by_id(conn: Connection, account_id: int) -> Account:
    return _account(conn, conn.execute(select(accounts).where(accounts.c.id == account_id)).one())


def _account(conn: Connection, row) -> Account:
    return Account(**row._mapping, senders=frozenset(senders.of(conn, row.id)))


def require(conn: Connection, system_id: str) -> Account:
    account = get(conn, system_id)
    if account is None:
        raise AccountError(f"no account {system_id}")
    return account


def all_accounts(conn: Connection) -> list[Account]:
    rows = conn.execute(select(accounts).order_by(accounts.c.system_id)).all()
    owned = senders.all_by_account(conn)
    return [Account(**row._mapping, senders=owned.get(row.id, frozenset())) for row in rows]


def change(conn: Connection, system_id: str, *, password: str | None = None, **values) -> Account:
    """Set the given columns (those of `_SETTABLE`; None means unchanged) and the password."""
    _check(system_id, password, None, None)
    values = {k: v for k, v in values.items() if v is not None}
    for key, value in values.items():
        verdict = _SETTABLE[key](value)
        if verdict is not True:
            raise AccountError(verdict)
    before = require(conn, system_id)
    default = values.get("default_validity", before.default_validity)
    if default > values.get("max_validity", before.max_validity):
        raise AccountError("the default validity cannot be longer than the maximum")
    if password is not None:
        values["password_hash"] = hash_password(password)
    if values:
        conn.execute(update(accounts).where(accounts.c.system_id == system_id).values(**values))
    return get(conn, system_id)


def remove(conn: Connection, system_id: str) -> None:
    """Remove an account that has no history (messages, deliveries waiting for it, credit
    movements), with what was registered for it: its senders, API tokens and email addresses.
    One with history is disabled instead."""
    account = require(conn, system_id)
    for table, what in ((messages, "messages"), (outbox, "deliveries"), (ledger, "credit history")):
        if conn.execute(select(table.c.id).where(table.c.account_id == account.id)).first():
            raise AccountError(
                f"account {system_id} has {what} in the store: disable it with "
                f"`smsc account set {system_id} --disable` instead"
            )
    for table in (schema.senders, api_tokens, mail_senders):
        conn.execute(delete(table).where(table.c.account_id == account.id))
    conn.execute(delete(accounts).where(accounts.c.id == account.id))
