"""The HTTP API's bearer tokens (`smsc account token`). A token is shown once, when it is made;
the store keeps its SHA-256 only, and a token is known afterwards by a fingerprint: the first
hex digits of that hash (which tell nothing of the token)."""

import hashlib
import secrets

from sqlalchemy import Connection, delete, insert, select

from . import accounts
from .accounts import Account, AccountError
from .schema import api_tokens

PREFIX = "smsc_"  # makes a leaked token easy to recognise (secret scanners, logs)
MAX_LABEL = 64
FINGERPRINT = 12  # hex digits of the hash that name a token


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def fingerprint(token_hash: bytes) -> str:
    return token_hash.hex()[:FINGERPRINT]


def add(conn: Connection, account_id: int, label: str, now: float) -> str:
    """A new token for the account: returned here, never again."""
    if len(label) > MAX_LABEL or not label.isprintable():
        raise AccountError(f"--label: at most {MAX_LABEL} printable characters")
    token = PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        insert(api_tokens).values(
            token_hash=digest(token), account_id=account_id, label=label, created_at=now
        )
    )
    return token


def of(conn: Connection, account_id: int) -> list[dict]:
    """The account's tokens, oldest first: fingerprint, label, created_at."""
    rows = conn.execute(
        select(api_tokens.c.token_hash, api_tokens.c.label, api_tokens.c.created_at)
        .where(api_tokens.c.account_id == account_id)
        .order_by(api_tokens.c.created_at)
    )
    return [
        {"fingerprint": fingerprint(h), "label": label, "created_at": created_at}
        for h, label, created_at in rows
    ]


def revoke(conn: Connection, account_id: int, shown: str) -> bool:
    """Delete the account's token of this fingerprint (or a longer prefix of its hash)."""
    shown = shown.strip().lower()
    if len(shown) < FINGERPRINT:
        return False
    hashes = conn.execute(
        select(api_tokens.c.token_hash).where(api_tokens.c.account_id == account_id)
    ).scalars()
    found = [h for h in hashes if h.hex().startswith(shown)]
    if len(found) != 1:
        return False
    conn.execute(delete(api_tokens).where(api_tokens.c.token_hash == found[0]))
    return True


def account_of(conn: Connection, token_hash: bytes) -> Account | None:
    """The account a token's hash belongs to, whatever its state (enabled, networks)."""
    account_id = conn.execute(
        select(api_tokens.c.account_id).where(api_tokens.c.token_hash == token_hash)
    ).scalar()
    return None if account_id is None else accounts.by_id(conn, account_id)
